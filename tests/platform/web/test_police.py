"""Police search on the city's API and pages: searches across buildings, pictures, the next
page and the export with every filter kept, each audited before it is answered; a bad filter
refused with its code and words, audited never. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from rental_platform.store import Store

from .conftest import ENTRIES, ID_NUMBER, JPEG, PURPOSE, A, B, City, fill_city


def audit_rows(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in store.db.execute(
            "SELECT action, purpose, params, records FROM audit ORDER BY seq"
        ).fetchall()
    ]


@pytest.fixture
def police(city: City) -> Any:
    fill_city(city.store)
    client = city.client()
    city.log_in(client, "police")
    return client


def test_the_api_searches_across_buildings_and_audits_every_answer(city: City, police: Any) -> None:
    found = police.get(
        "/api/v1/entries",
        params={"street": "440305001", "card": "1001", "limit": "50", "purpose": PURPOSE},
    )
    assert found.status_code == 200, found.text
    page = found.json()
    assert [e["gateway_id"] for e in page["entries"][:2]] == [B, A]  # newest first, both
    assert page["entries"][1]["building"] == "440305001002-0042"
    assert page["next_cursor"]
    rest = police.get(
        "/api/v1/entries",
        params={
            "street": "440305001",
            "card": "1001",
            "limit": "50",
            "purpose": PURPOSE,
            "cursor": page["next_cursor"],
        },
    ).json()
    assert len(page["entries"]) + len(rest["entries"]) == ENTRIES + 1
    assert rest["next_cursor"] is None

    by_person = police.get(
        "/api/v1/entries", params={"id_number": ID_NUMBER.lower(), "purpose": PURPOSE}
    ).json()
    assert [(e["seq"], e["name"]) for e in by_person["entries"]] == [(62, "王小明")]
    picture = police.get(f"/api/v1/entries/{A}-62/snapshot", params={"purpose": PURPOSE})
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.content == JPEG

    rows = audit_rows(city.store)
    assert [(action, records) for action, _p, _q, records in rows] == [
        ("entries.query", 50),
        ("entries.query", 11),
        ("entries.query", 1),
        ("snapshot.view", 1),
    ]
    assert all(purpose == PURPOSE for _a, purpose, _q, _r in rows[:3])
    assert json.loads(rows[2][2])["id_number"] == "1101**********002X"
    everything = json.dumps(rows) + json.dumps(police.get("/api/v1/audit").json())
    assert ID_NUMBER not in everything  # no plaintext ID number in the audit, stored or read
    assert police.get("/api/v1/audit").json()[0]["action"] == "audit.view"


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"street": "001"}, "street", "street_code"),  # a street's 3 digits: every district's
        ({"card": "1001", "purpose": ""}, "purpose", "purpose_required"),
        ({"card": "1001", "purpose": "\u200b "}, "purpose", "purpose_required"),
        ({"room": "301"}, "room", "room_needs_building"),  # every building has a 301
        ({"id_number": "110105194912310021"}, "id_number", "id_check_digit"),
        ({"since": "2026-03-01T08:00"}, "since", "time_offset"),
        ({"cursor": "forged"}, "cursor", "cursor"),
        ({"door": "main"}, "door", "unknown_filter"),  # never ignored, so never wider
    ],
)
def test_a_bad_filter_is_refused_with_its_code_and_never_searched(
    city: City, police: Any, params: dict[str, str], field: str, code: str
) -> None:
    answer = police.get("/api/v1/entries", params={"purpose": PURPOSE, **params})
    assert answer.status_code == 422
    body = answer.json()
    assert (body["field"], body["code"]) == (field, code)
    assert re.search(r"[\u4e00-\u9fff]", body["said"])  # words for a person, in Chinese
    assert audit_rows(city.store) == []


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def _hidden(page: str, action: str) -> dict[str, str]:
    """The fields of the form posting to `action`, as a browser would send them."""
    form = page.split(f'action="{action}"')[-1].split("</form>")[0]
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))


def test_the_page_searches_pages_on_and_exports_with_every_filter_kept(
    city: City, police: Any
) -> None:
    csrf = _csrf(police.get("/police").text)
    typed = {
        "csrf_token": csrf,
        "purpose": PURPOSE,
        "street": "440305001",
        "card": "1001",
        "since": "2026-03-01T08:00",
        "until": "2026-03-01T12:00",
    }
    first = police.post("/police", data=typed)
    assert first.status_code == 200
    assert first.text.count("<tr data-event-id=") == 50
    assert "2026-03-01 10:00:00" in first.text  # B's entry, in its building's own offset
    more = _hidden(first.text, "/police")
    assert {k: more[k] for k in typed} == typed  # the next page carries every filter on
    second = police.post("/police", data=more)
    assert second.text.count("<tr data-event-id=") == ENTRIES + 1 - 50

    export = police.post("/police/export.csv", data=_hidden(first.text, "/police/export.csv"))
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["时间", "楼栋编码", "网关"]
    assert len(rows) == 1 + ENTRIES + 1
    actions = [(a, r) for a, _p, _q, r in audit_rows(city.store)]
    assert actions == [
        ("entries.query", 50),
        ("entries.query", 11),
        ("export.started", 0),
        ("export.finished", ENTRIES + 1),
    ]

    audit = police.get("/police/audit")
    assert "审计链完整" in audit.text
    assert "导出完成" in audit.text


def test_a_refused_search_keeps_everything_typed(city: City, police: Any) -> None:
    csrf = _csrf(police.get("/police").text)
    typed = {
        "csrf_token": csrf,
        "purpose": PURPOSE,
        "building": "440305001002-0042",
        "room": "301",
        "id_number": "110105194912310021",
        "card": "1001",
    }
    answer = police.post("/police", data=typed)
    assert answer.status_code == 422
    assert "身份证号：最后一位校验码不对" in answer.text
    for value in typed.values():
        assert f'value="{value}"' in answer.text
    forged = police.post("/police", data={**typed, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert audit_rows(city.store) == []
