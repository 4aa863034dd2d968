"""The JSON API's behaviour: tenants masked, police queries and pictures audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from gateway.store import Store
from tests.store.factories import id_number

from .building import BuildingGateway
from .conftest import login

ID_NUMBER = id_number(7)
PHONE = "13800138000"


def tenant_json(**changes: Any) -> dict[str, Any]:
    body = {"name": "张伟", "id_number": ID_NUMBER, "phone": PHONE, "room": "301",
            "valid_from": "2026-01-01", "valid_until": "2027-06-30",
            "cards": [{"number": 1234567}, {"number": 7654321, "status": "lost"}]}  # fmt: skip
    body.update(changes)
    return body


def access(store: Store, card: int, room: str, granted: bool = True) -> dict[str, Any]:
    entry = store.append_event({
        "type": "access.granted" if granted else "access.denied", "door": "main",
        "credential": {"kind": "card", "number": card}, "room": room,
        "reason": "tenant_card" if granted else "unknown_card",
        "snapshot": None, "snapshot_error": "disabled",
    })  # fmt: skip
    return entry.body


def test_tenants_are_added_listed_changed_and_removed_masked(client: TestClient) -> None:
    csrf = {"X-CSRF-Token": login(client, "head")}
    created = client.post("/api/v1/tenants", json=tenant_json(), headers=csrf)
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert tenant["id_number"] == ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
    assert tenant["phone"] == "138****8000"
    assert tenant["cards"] == [{"number": 1234567, "status": "active"},
                               {"number": 7654321, "status": "lost"}]  # fmt: skip
    listed = client.get("/api/v1/tenants", params={"room": "301"}).json()
    assert [t["id"] for t in listed] == [tenant["id"]]
    suspended = client.patch(f"/api/v1/tenants/{tenant['id']}",
                             json={"status": "suspended", "name": "张伟伟"}, headers=csrf)
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["name"] == "张伟伟"
    assert client.delete(f"/api/v1/tenants/{tenant['id']}", headers=csrf).status_code == 204
    assert client.get(f"/api/v1/tenants/{tenant['id']}").status_code == 404
    for response in (created, suspended):
        assert ID_NUMBER not in response.text
        assert PHONE not in response.text


def test_bad_tenant_input_names_the_field(client: TestClient) -> None:
    csrf = {"X-CSRF-Token": login(client, "head")}
    bad = client.post("/api/v1/tenants", json=tenant_json(id_number="440305199001011230"),
                      headers=csrf)  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "id_number"]
    # What a person is told, in the caller's language: Chinese unless it asks for English.
    assert bad.json()["said"].startswith("身份证号：")
    english = client.post("/api/v1/tenants", json=tenant_json(id_number="440305199001011230"),
                          headers={**csrf, "Accept-Language": "en-GB,en;q=0.9"})  # fmt: skip
    assert english.json()["said"].startswith("ID number: ")
    unknown_key = client.post("/api/v1/tenants", json=tenant_json(pin="1234"), headers=csrf)
    assert unknown_key.status_code == 422
    assert unknown_key.json()["said"] == "pin：填写的内容不对"
    too_long = client.post("/api/v1/tenants", json=tenant_json(name="名" * 300), headers=csrf)
    assert too_long.json()["said"] == "姓名：不能超过 64 个字"
    client.post("/api/v1/tenants", json=tenant_json(), headers=csrf)
    taken = client.post("/api/v1/tenants", json=tenant_json(id_number=id_number(8), cards=[
        {"number": 1234567}]), headers=csrf)  # fmt: skip
    assert taken.status_code == 409
    assert taken.json()["said"] == "卡 1234567 已属于另一位住户（301 房，这张卡有效）"


def test_police_queries_need_a_purpose_and_are_audited(client: TestClient, store: Store) -> None:
    first = access(store, 1111, "301")
    access(store, 2222, "302", granted=False)
    login(client, "police")
    assert client.get("/api/v1/entries").status_code == 422  # no purpose
    response = client.get("/api/v1/entries", params={"purpose": "案件 2026-118", "room": "301"})
    assert response.status_code == 200
    assert [e["event_id"] for e in response.json()["entries"]] == [first["event_id"]]
    [row] = store.audit_page()
    assert (row.username, row.action, row.purpose, row.records) == (
        "police", "entries.query", "案件 2026-118", 1)
    assert row.params == {"room": "301", "limit": 100}
    assert row.remote == "testclient"
    denied = client.get("/api/v1/entries", params={"purpose": "p", "result": "denied"}).json()
    assert [e["credential"]["number"] for e in denied["entries"]] == [2222]


def test_a_snapshot_is_served_checked_and_audited(
    client: TestClient, store: Store, gateway: BuildingGateway
) -> None:
    held = store.append_event({
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 5},
        "reason": "tenant_card", "snapshot": None, "snapshot_error": "interrupted",
    }, capture=True)  # fmt: skip
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
    stored = gateway.snapshots.save(held.event_id, jpeg, taken=datetime.now(UTC))
    store.fill_snapshot(held.seq, stored.reference())
    login(client, "police")
    url = f"/api/v1/entries/{held.event_id}/snapshot"
    response = client.get(url, params={"purpose": "案件 7"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == jpeg
    [row] = store.audit_page()
    assert (row.action, row.params, row.purpose) == ("snapshot.view", {"event_id": held.event_id},
                                                     "案件 7")  # fmt: skip
    stored.path.write_bytes(jpeg + b"tampered")
    assert client.get(url).status_code == 409
    missing = "0b8f3f9e-7a57-4f0c-9d51-3b1f2f6c9a10"
    assert client.get(f"/api/v1/entries/{missing}/snapshot").status_code == 404


def test_alarms_and_the_audit_log(client: TestClient, store: Store) -> None:
    store.append_event({
        "type": "access.denied", "door": "main", "credential": {"kind": "card", "number": 9},
        "reason": "lost_card", "snapshot": None, "snapshot_error": "disabled",
    }, alarm="lost_card")  # fmt: skip
    login(client, "head")
    [alarm] = client.get("/api/v1/alarms").json()
    assert alarm["kind"] == "lost_card"
    login(client, "police")
    client.get("/api/v1/entries", params={"purpose": "巡查"})
    rows = client.get("/api/v1/audit").json()
    assert [r["action"] for r in rows] == ["entries.query"]
    # Reading the audit log is itself audited.
    assert [r.action for r in store.audit_page()] == ["audit.view", "entries.query"]
    assert store.verify_audit().ok


def test_health_and_metrics_say_nothing_personal(client: TestClient, store: Store) -> None:
    store.add_user("someone", "building_head", "Another good pass 99")
    health = client.get("/healthz")
    assert health.status_code == 200
    text = client.get("/metrics").text
    assert "gateway_up 1" in text
    assert 'gateway_reader_online{door="main"} 1' in text
    assert "someone" not in text
    assert "someone" not in json.dumps(health.json())
