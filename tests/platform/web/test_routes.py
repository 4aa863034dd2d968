"""Who may call what: every route of the city's application against this table, role by role.

A new route without a row here fails the first test, so none can ship unchecked; so does a
route whose role dependencies (read by `web_security.routes.route_roles`) say otherwise.
"""

from __future__ import annotations

import pytest

from rental_platform.web.app import create_app
from web_security.routes import route_roles

from .conftest import City

PUBLIC = "public"
POLICE = ("police",)
BOTH = ("police", "district")
ACCESS: dict[tuple[str, str], str | tuple[str, ...]] = {
    ("GET", "/healthz"): PUBLIC,
    ("POST", "/api/v1/login"): PUBLIC,
    ("POST", "/api/v1/logout"): BOTH,
    ("GET", "/api/v1/gateways"): BOTH,
    ("GET", "/api/v1/entries"): POLICE,
    ("GET", "/api/v1/entries/{event_id}/snapshot"): POLICE,
    ("GET", "/api/v1/audit"): POLICE,
    ("GET", "/"): PUBLIC,  # to the login page, or the role's own first page
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): BOTH,
    ("GET", "/password"): BOTH,
    ("POST", "/password"): BOTH,
    ("GET", "/lang/{lang}"): PUBLIC,
    ("GET", "/fleet"): BOTH,
    ("GET", "/fleet/{gateway_id}"): BOTH,
    ("GET", "/police"): POLICE,
    ("POST", "/police"): POLICE,
    ("GET", "/police/snapshot/{event_id}"): POLICE,
    ("POST", "/police/export.csv"): POLICE,
    ("GET", "/police/audit"): POLICE,
}


@pytest.fixture(params=["sqlite"])
def platform_db(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The route table does not depend on the engine: SQLite alone."""
    return f"{tmp_path}/platform.db"


def test_every_route_is_in_the_table_with_the_roles_its_dependencies_let_in(city: City) -> None:
    found = route_roles(create_app(city.states[0]))
    expected = {route: None if who == PUBLIC else frozenset(who) for route, who in ACCESS.items()}
    assert found == expected


def test_strangers_get_401_or_the_login_page_and_other_roles_403(city: City) -> None:
    stranger = city.client()
    district = city.client()
    csrf = city.log_in(district, "district")
    for (method, path), who in ACCESS.items():
        if who == PUBLIC:
            continue
        url = path.replace("{gateway_id}", "gw-440305-0042").replace("{event_id}", "e-1")
        answer = stranger.request(method, url)
        if path.startswith("/api/"):
            assert answer.status_code == 401, (method, path)
        else:
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"] == "/login"
        if "district" not in who:
            refused = district.request(method, url, headers={"X-CSRF-Token": csrf})
            assert refused.status_code == 403, (method, path)


def test_every_answer_carries_the_strict_headers(city: City) -> None:
    client = city.client()
    for path in ("/login", "/healthz", "/api/v1/gateways"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
