"""The fleet: every gateway's state from its retained status and its events, filtered by street
and community, silent ones flagged (SPEC 8 `GET /api/v1/gateways`, the fleet page). Every test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from rental_platform.store import store_batch

from ..conftest import event, message
from .conftest import City

A, B, C = "gw-440305-0042", "gw-440305-0043", "gw-440305-0044"
HOUR = 3600.0


def status(gateway_id: str, state: str, building: str, **fields: object) -> dict[str, object]:
    return {
        "state": state,
        "ts": "2026-03-01T08:00:00+08:00",
        "version": "1.4.2",
        "registry_version": 7,
        "queue_depth": 3,
        "building": building,
        **fields,
    }


def test_gateways_filtered_by_street_and_community_with_their_parts(city: City) -> None:
    now = time.time()
    camera_down = {
        "type": "access.denied",
        "credential": {"kind": "card", "number": 5150},
        "room": "301",
        "reason": "unknown_card",
        "snapshot": None,
        "snapshot_error": "camera_offline",
        "clock_synced": False,
        "ts": "2026-03-01T08:05:00+08:00",
    }
    store_batch(
        city.store,
        [
            message(A, "status", status(A, "online", "440305001002-0042")),
            message(B, "status", status(B, "offline", "440305001003-0001")),
            message(
                C, "status", status(C, "online", "440305002002-0005"), received_at=now - 2 * HOUR
            ),
            # Stored out of order: the reader's later word (seq 3, online) arrives first.
            message(A, "events", event(A, 3, type="reader.online", clock_synced=True)),
            message(A, "events", event(A, 2, **camera_down)),
        ],
    )
    store_batch(city.store, [message(A, "events", event(A, 1, type="reader.offline"))])
    client = city.client()
    city.log_in(client, "district")

    def listed(**query: str) -> dict[str, dict[str, Any]]:
        answer = client.get("/api/v1/gateways", params=query)
        assert answer.status_code == 200, answer.text
        return {g["gateway_id"]: g for g in answer.json()["gateways"]}

    assert set(listed()) == {A, B, C}
    assert set(listed(street="440305001")) == {A, B}
    found = listed(street="440305001", community="440305001002")
    assert set(found) == {A}
    a = found[A]
    assert a["state"] == "online"
    assert a["building"] == "440305001002-0042"
    assert (a["queue_depth"], a["registry_version"], a["version"]) == (3, 7, "1.4.2")
    assert a["since"].endswith("+08:00")  # the building's offset, as its gateway writes it
    assert a["readers_offline"] == []  # seq 1 said offline, seq 3 online: the later one wins
    assert a["camera_error"] == "camera_offline"
    assert a["clock_synced"] is True  # seq 3's word, the latest
    assert not a["silent"]
    c = listed(street="440305002")[C]
    assert c["state"] == "online"
    assert c["silent"]  # its last status two hours ago, past the hour's threshold
    assert listed(street="440305001")[B]["state"] == "offline"

    page = client.get("/fleet", params={"street": "440305001"})
    assert page.status_code == 200
    assert 'value="440305001"' in page.text  # the filter stays in the form
    assert "共 2 台，在线 1 台，需要关注 2 台" in page.text
    assert "摄像头" in page.text
    detail = client.get(f"/fleet/{A}", params={"back": "street=440305001"})
    assert "摄像头离线" in detail.text
    assert 'href="/fleet?street=440305001"' in detail.text
    assert "2026-" in detail.text


def test_since_moves_only_when_the_state_changes(city: City) -> None:
    start = time.time() - 3 * HOUR
    code = "440305001002-0042"
    for offset, state in ((0, "online"), (HOUR, "online"), (2 * HOUR, "offline")):
        store_batch(
            city.store, [message(A, "status", status(A, state, code), received_at=start + offset)]
        )
        since = city.store.db.execute("SELECT since FROM status").fetchone()[0]
        assert since == (start if offset < 2 * HOUR else start + 2 * HOUR)


def test_a_bad_filter_is_refused_with_its_code_and_words_never_widened(city: City) -> None:
    client = city.client()
    city.log_in(client, "police")
    # A street's 3 digits alone name a street in every district: refused, never widened.
    for street in ("001", "44030500", "440305001 OR 1=1", "４４０３０５００１"):
        answer = client.get("/api/v1/gateways", params={"street": street})
        assert answer.status_code == 422, street
        body = answer.json()
        assert (body["code"], body["field"]) == ("street_code", "street")
        assert body["said"].startswith("街道：应为区县 6 位加街道 3 位")
    elsewhere = client.get(
        "/api/v1/gateways",
        params={"street": "440305001", "community": "440305002002"},
        headers={"Accept-Language": "en-GB"},
    )
    assert elsewhere.json()["code"] == "outside_area"
    assert elsewhere.json()["said"] == (
        "Community: is not within the street or community also given"
    )
    too_long = client.get("/api/v1/gateways", params={"street": "1" * 40})
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "bad_request"
    page = client.get("/fleet", params={"street": "12a", "community": "440305001002"})
    assert page.status_code == 422
    assert "街道：应为区县 6 位加街道 3 位" in page.text
    assert 'value="12a"' in page.text  # nothing typed is lost
    assert 'value="440305001002"' in page.text
