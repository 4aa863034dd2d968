"""A card's life on the building head's page, as the Shenzhen specification names its steps:
extend (延期), report lost (挂失), reinstate (解挂), cancel (注销); and the alarm a lost or
cancelled card raises, saying whose card it was, at which door, with its picture."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from gateway.store import Conflict, Store, TenantCreate
from tests.store.factories import id_number

from .building import BuildingGateway
from .test_pages import form_login
from .test_plain_chinese import said


def _tenant(store: Store, card: int, until: date = date(2027, 6, 30)) -> str:
    return store.add_tenant(TenantCreate(
        name="钱芳", id_number=id_number(71), phone="13900000071", room="1501",
        valid_from=date(2026, 1, 1), valid_until=until, cards=(card,))).id  # fmt: skip


def test_extending_a_lease_is_one_action_and_never_shortens_it(
    client: TestClient, store: Store
) -> None:
    tenant_id = _tenant(store, 7101)
    csrf = form_login(client, "head")
    page = client.get(f"/tenants/{tenant_id}").text
    assert 'name="valid_until" type="date" value="2028-06-30"' in page  # a year on, offered
    assert "2026-01-01 – 2027-06-30" in page

    earlier = client.post(f"/tenants/{tenant_id}/extend",
                          data={"csrf_token": csrf, "valid_until": "2027-01-01"})  # fmt: skip
    assert earlier.status_code == 422
    assert said(earlier.text) == "延期后的日期（2027-01-01）应晚于现在的租期结束（2027-06-30）"
    assert 'value="2027-01-01"' in earlier.text  # what was typed stays
    assert store.get_tenant(tenant_id).valid_until == date(2027, 6, 30)

    client.post(f"/tenants/{tenant_id}/extend",
                data={"csrf_token": csrf, "valid_until": "2028-06-30"})  # fmt: skip
    extended = store.get_tenant(tenant_id)
    assert (extended.valid_from, extended.valid_until) == (date(2026, 1, 1), date(2028, 6, 30))


def test_cancelling_asks_first_and_is_for_good(client: TestClient, store: Store) -> None:
    tenant_id = _tenant(store, 7102)
    csrf = form_login(client, "head")
    asked = client.post("/cards/7102/cancel", data={"csrf_token": csrf})
    assert "确定注销钱芳的卡 7102 吗？" in asked.text
    assert store.get_card(7102).status == "active"  # one tap changed nothing

    client.post("/cards/7102/cancel", data={"csrf_token": csrf, "confirmed": "1"})
    assert store.get_card(7102).status == "cancelled"
    page = client.get(f"/tenants/{tenant_id}").text
    assert "7102 · 已注销" in re.sub(r"\s+", " ", page)
    assert "/cards/7102/found" not in page
    assert "/cards/7102/lost" not in page
    assert client.post("/cards/7102/found", data={"csrf_token": csrf}).status_code == 409

    for attempt in ("active", "lost"):  # not through the store either
        with pytest.raises(Conflict) as refused:
            store.set_card_status(7102, attempt)
        assert refused.value.code == "card_cancelled"
    other = store.add_tenant(TenantCreate(
        name="孙伟", id_number=id_number(72), phone="13900000072", room="1502",
        valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1)))  # fmt: skip
    refused = client.post(f"/tenants/{other.id}/cards", data={"csrf_token": csrf,
                                                             "number": "7102"})  # fmt: skip
    assert said(refused.text) == "卡 7102 已属于另一位住户（1501 房，这张卡已注销）"


def test_an_alarm_says_whose_card_at_which_door_with_the_picture(
    client: TestClient, store: Store, gateway: BuildingGateway
) -> None:
    tenant_id = _tenant(store, 7103)
    store.set_card_status(7103, "lost")
    entry = store.append_event({
        "type": "access.denied", "door": "garage", "reason": "lost_card", "tenant_id": tenant_id,
        "room": "1501", "credential": {"kind": "card", "number": 7103}, "snapshot": None,
        "snapshot_error": "interrupted",
    }, alarm="lost_card", capture=True)  # fmt: skip
    picture = b"\xff\xd8 whoever holds the card \xff\xd9"
    stored = gateway.snapshots.save(entry.event_id, picture, taken=datetime.now(UTC))
    store.fill_snapshot(entry.seq, stored.reference())

    form_login(client, "head")
    overview = re.sub(r"\s+", " ", client.get("/").text)
    assert "有人刷了已挂失的卡 · 车库门 · 卡号 7103 · 钱芳（1501 房）" in overview
    page = client.get("/alarms").text
    [alarm_id] = re.findall(r'data-alarm-id="(\d+)"', page)
    assert f'src="/alarms/{alarm_id}/snapshot"' in page
    shown = client.get(f"/alarms/{alarm_id}/snapshot")
    assert (shown.status_code, shown.content) == (200, picture)
    viewed = store.audit_page()[0]
    assert (viewed.action, viewed.username, viewed.purpose) == ("snapshot.view", "head",
                                                                f"告警 {alarm_id}")  # fmt: skip


def test_a_cancelled_card_at_the_door_is_refused_and_raises_an_alarm() -> None:
    from gateway.decisions import decide_card

    class Record:
        card_status, tenant_id, tenant_status, room = "cancelled", "t", "active", "1501"
        valid_from, valid_until = date(2026, 1, 1), date(2099, 1, 1)

    for lockdown in (False, True):
        decision = decide_card(parity_ok=True, record=Record(), today=date(2026, 12, 7),
                               lockdown=lockdown)  # fmt: skip
        assert (decision.granted, decision.reason, decision.alarm) == (
            False, "cancelled_card", "cancelled_card")  # fmt: skip
