"""A police search that cannot silently mislead: doors picked from the building's, filters kept
through every action on the results, exports in words with names and masked ID numbers."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from gateway.store import Store, TenantCreate
from tests.store.factories import id_number

from .building import BuildingGateway
from .test_pages import form_login
from .test_plain_chinese import said

CASE = "案件 2026-0321"
FILTERS = {"purpose": CASE, "since": "2026-01-01T00:00", "until": "2099-01-01T00:00",
           "door": "garage", "room": "1601", "result": "granted"}  # fmt: skip


def _entries(store: Store, count: int) -> str:
    tenant = store.add_tenant(TenantCreate(
        name="周敏", id_number=id_number(81), phone="13900000081", room="1601",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1), cards=(8101,)))  # fmt: skip
    for _ in range(count):
        store.append_event({
            "type": "access.granted", "door": "garage", "reason": "tenant_card", "room": "1601",
            "tenant_id": tenant.id, "credential": {"kind": "card", "number": 8101},
            "snapshot": None, "snapshot_error": "disabled",
        })  # fmt: skip
    return tenant.id


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(html.unescape(url)).query).items()}


def test_doors_are_picked_from_the_buildings_doors(client: TestClient, store: Store) -> None:
    form_login(client, "police")
    page = client.get("/police").text
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]+)</option>', page)
    assert options[:3] == [("", "全部门"), ("main", "正门"), ("garage", "车库门")]
    chosen = client.get("/police", params={**FILTERS}).text
    assert '<option value="garage" selected>车库门</option>' in chosen
    unknown = client.get("/police", params={"purpose": CASE, "door": "main-gate"})
    assert unknown.status_code == 422
    assert said(unknown.text) == "门：本楼没有“main-gate”这个门，请从列表中选择"
    export = client.get("/police/export.csv", params={"purpose": CASE, "door": "main-gate"})
    assert export.status_code == 422  # never an empty file that reads as "nobody came"


def test_every_action_on_the_results_keeps_the_search(
    client: TestClient, store: Store, gateway: BuildingGateway
) -> None:
    tenant_id = _entries(store, 60)  # more than a page of 50
    csrf = form_login(client, "police")
    first = client.get("/police", params=FILTERS).text
    kept = {**FILTERS}

    more = re.search(r'<a href="([^"]+)">更多', first)
    assert more is not None
    assert _query(more.group(1)).items() >= kept.items()
    second = client.get(html.unescape(more.group(1))).text
    assert len(re.findall(r"<tr data-event-id=", second)) == 10

    here = re.search(r'name="back" value="([^"]+)"', second)
    assert here is not None
    back = html.unescape(here.group(1))
    assert _query("?" + back).items() >= {**kept, "cursor": _query(more.group(1))["cursor"]}.items()
    pictured = _with_picture(store, gateway, tenant_id)
    held = client.post(f"/police/hold/{pictured}",
                       data={"csrf_token": csrf, "purpose": CASE, "back": back},
                       follow_redirects=False)  # fmt: skip
    assert held.status_code == 303
    assert _query(held.headers["location"]) == {**_query("?" + back), "held": pictured}
    assert "已保留这张抓拍" in client.get(held.headers["location"]).text

    drill = re.search(r'<a href="([^"]+)">周敏</a>', first)
    assert drill is not None
    assert _query(drill.group(1)) == {**kept, "tenant_id": tenant_id}
    narrowed = client.get(html.unescape(drill.group(1))).text
    assert "只看这位住户：周敏" in narrowed  # the narrower search says so, and how to undo it

    revealed = client.post(f"/police/reveal/{tenant_id}",
                           data={"csrf_token": csrf, "purpose": CASE, "back": back})  # fmt: skip
    link = re.search(r'<a href="([^"]+)">返回', revealed.text)
    assert link is not None
    assert _query(link.group(1)) == _query("?" + back)
    crafted = client.post(
        f"/police/reveal/{tenant_id}",
        data={"csrf_token": csrf, "purpose": CASE, "back": "x=1&purpose=other&next=https://evil"},
    )
    link = re.search(r'<a href="([^"]+)">返回', crafted.text)
    assert link is not None
    assert _query(link.group(1)) == {"purpose": CASE}


def _with_picture(store: Store, gateway: BuildingGateway, tenant_id: str) -> str:
    entry = store.append_event({
        "type": "access.granted", "door": "garage", "reason": "tenant_card", "room": "1601",
        "tenant_id": tenant_id, "credential": {"kind": "card", "number": 8101},
        "snapshot": None, "snapshot_error": "interrupted",
    }, capture=True)  # fmt: skip
    stored = gateway.snapshots.save(entry.event_id, b"\xff\xd8 \xff\xd9", taken=datetime.now(UTC))
    store.fill_snapshot(entry.seq, stored.reference())
    return entry.event_id


def test_the_export_says_who_in_words_with_the_id_number_masked(
    client: TestClient, store: Store
) -> None:
    _entries(store, 3)
    form_login(client, "police")
    export = client.get("/police/export.csv", params=FILTERS).text
    header, *rows = csv.reader(io.StringIO(export.lstrip("\ufeff")))
    assert header == ["时间", "门", "结果", "原因", "房间", "姓名", "身份证号（部分隐藏）", "卡号",
                      "抓拍校验码", "事件编号", "序号"]  # fmt: skip
    assert len(rows) == 3
    for row in rows:
        assert row[1:6] == ["车库门", "准许", "住户门卡", "1601", "周敏"]
        assert row[6] == id_number(81)[:4] + "*" * 10 + id_number(81)[-4:]
        assert row[7] == "8101"
