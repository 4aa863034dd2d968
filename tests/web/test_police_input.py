"""Police input: a purpose that says something, and filters within bounds, checked before
anything is read; refusals are a 422 that names the filter, in Chinese on the page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.store import Store
from gateway.web.i18n import WORDS
from tests.store.factories import id_number

from .conftest import login
from .test_pages import form_login

ID = id_number(51)
CASE = "案件 2026-0412"
# Whitespace, and characters that show nothing at all: zero-width space, word joiner, BOM,
# ideographic space, Hangul filler.
BLANKS = [" ", "\t \n", "\u200b", "\u3000\u2060\ufeff", " \u3164 "]


def test_a_purpose_with_nothing_visible_is_refused_and_a_good_one_stored_trimmed(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    client.post("/tenants/new", data={
        "csrf_token": csrf, "name": "孙丽", "id_number": ID, "phone": "13912345651",
        "room": "701", "valid_from": "2026-01-01", "valid_until": "2027-01-01", "card": "5151",
    })  # fmt: skip
    [tenant] = store.search_tenants(room="701")
    client.cookies.clear()
    csrf = form_login(client, "police")
    for blank in BLANKS:
        query = client.get("/api/v1/entries", params={"purpose": blank})
        assert query.status_code == 422, repr(blank)
        assert query.json()["detail"][0]["loc"] == ["query", "purpose"]
        page = client.get("/police", params={"purpose": blank, "room": "701"})
        assert page.status_code == 422, repr(blank)
        assert WORDS["invalid.purpose"][0] in page.text
        export = client.get("/police/export.csv", params={"purpose": blank})
        assert export.status_code == 422, repr(blank)
        assert "text/html" in export.headers["content-type"]
        reveal = client.post(f"/police/reveal/{tenant.id}",
                             data={"csrf_token": csrf, "purpose": blank})  # fmt: skip
        assert reveal.status_code == 422, repr(blank)
        assert ID not in reveal.text
    assert store.audit_page() == []
    padded = f" \u3000{CASE}\u200b "
    assert client.get("/api/v1/entries", params={"purpose": padded}).status_code == 200
    revealed = client.post(f"/police/reveal/{tenant.id}",
                           data={"csrf_token": csrf, "purpose": padded})  # fmt: skip
    assert ID in revealed.text
    assert [(r.action, r.purpose) for r in store.audit_page()] == [
        ("id_number.reveal", CASE), ("entries.query", CASE)]


# (filter, value, the field the refusal names); each alone with a good purpose.
PAGE_FILTERS = [
    ("card", "00000000042", "card"),  # 11 digits: no card number has them
    # Other scripts' digits (which int() reads) are refused with their own message on every
    # form: tests/web/test_input_hygiene.py.
    ("room", "3" * 33, "room"),
    ("tenant_id", "not-a-tenant", "tenant_id"),
    ("door", "Main Door", "door"),
    ("since", "1900-01-01T00:00", "since"),
    ("since", "tomorrow", "since"),
    ("until", "2100-01-01T00:00", "until"),
    ("cursor", "1:99999999999999999999", "cursor"),
]
API_FILTERS = [
    ("tenant_id", "not-a-tenant", "tenant_id"),
    ("door", "../main", "door"),
    ("room", " 301", "room"),
    ("since", "1900-01-01T00:00:00Z", "since"),
    ("cursor", "1:99999999999999999999", "cursor"),
    ("cursor", "-1:-1", "cursor"),
]


@pytest.mark.parametrize(("name", "value", "field"), PAGE_FILTERS)
def test_a_page_filter_out_of_bounds_is_refused_in_chinese_before_anything_is_read(
    client: TestClient, store: Store, name: str, value: str, field: str
) -> None:
    form_login(client, "police")
    # The export takes the search's filters; paging is the page's alone.
    for url in ("/police",) if name == "cursor" else ("/police", "/police/export.csv"):
        response = client.get(url, params={"purpose": CASE, name: value})
        assert response.status_code == 422, (url, response.text[:300])
        assert WORDS[f"invalid.{field}"][0] in response.text
    assert store.audit_page() == []


@pytest.mark.parametrize(("name", "value", "field"), API_FILTERS)
def test_an_api_filter_out_of_bounds_is_a_422_naming_it(
    client: TestClient, store: Store, name: str, value: str, field: str
) -> None:
    login(client, "police")
    response = client.get("/api/v1/entries", params={"purpose": CASE, name: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]
    assert store.audit_page() == []


def test_until_before_since_is_refused_not_an_empty_search(
    client: TestClient, store: Store
) -> None:
    form_login(client, "police")
    page = client.get("/police", params={"purpose": CASE, "since": "2026-03-02T00:00",
                                         "until": "2026-03-01T00:00"})  # fmt: skip
    assert page.status_code == 422
    assert WORDS["invalid.until"][0] in page.text
    api = client.get("/api/v1/entries", params={"purpose": CASE, "since": "2026-03-02T00:00Z",
                                                "until": "2026-03-01T00:00Z"})  # fmt: skip
    assert api.status_code == 422
    assert api.json()["detail"][0]["loc"] == ["query", "until"]
    assert client.get("/police/audit", params={"before": "9" * 25}).status_code == 422
    assert store.audit_page() == []
