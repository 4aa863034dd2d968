"""Who may call what: every route of the app against this table, role by role.

A new route without a row here fails the first test, so none can ship unchecked; so does a
route whose role dependencies (read by `web_security.routes.route_roles`) say otherwise.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.web import pages_head
from gateway.web.app import create_app
from web_security.routes import route_roles

from .building import BuildingGateway
from .conftest import login

PUBLIC = "public"
ANY = ("building_head", "police", "installer")
EVENT_ID = "0b8f3f9e-7a57-4f0c-9d51-3b1f2f6c9a10"
TENANT_ID = "00000000-0000-4000-8000-000000000001"

HEAD = ("building_head",)
POLICE = ("police",)
ACCESS: dict[tuple[str, str], str | tuple[str, ...]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/api/v1/login"): PUBLIC,
    ("POST", "/api/v1/logout"): ANY,
    ("GET", "/api/v1/tenants"): ("building_head",),
    ("POST", "/api/v1/tenants"): ("building_head",),
    ("GET", "/api/v1/tenants/{tenant_id}"): ("building_head",),
    ("PATCH", "/api/v1/tenants/{tenant_id}"): ("building_head",),
    ("DELETE", "/api/v1/tenants/{tenant_id}"): ("building_head",),
    ("GET", "/api/v1/entries"): ("police",),
    ("GET", "/api/v1/entries/{event_id}/snapshot"): ("police",),
    ("GET", "/api/v1/alarms"): ("building_head", "police"),
    ("GET", "/api/v1/audit"): ("police",),
    # Pages
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): ANY,
    ("GET", "/password"): ANY,
    ("POST", "/password"): ANY,
    ("GET", "/setup"): PUBLIC,
    ("POST", "/setup"): PUBLIC,
    ("GET", "/lang/{lang}"): PUBLIC,
    ("GET", "/auth/upload"): HEAD,  # nginx's question before an upload's body (edge.py)
    ("GET", "/"): HEAD,
    ("GET", "/tenants"): HEAD,
    ("GET", "/tenants/new"): HEAD,
    ("POST", "/tenants/new"): HEAD,
    ("GET", "/tenants/{tenant_id}"): HEAD,
    ("POST", "/tenants/{tenant_id}"): HEAD,
    ("POST", "/tenants/{tenant_id}/status"): HEAD,
    ("POST", "/tenants/{tenant_id}/extend"): HEAD,
    ("POST", "/tenants/{tenant_id}/cards"): HEAD,
    ("POST", "/cards/{number}/lost"): HEAD,
    ("POST", "/cards/{number}/found"): HEAD,
    ("POST", "/cards/{number}/cancel"): HEAD,
    ("GET", "/cards/next-unknown"): HEAD,
    ("GET", "/alarms"): HEAD,
    ("GET", "/alarms/{alarm_id}/snapshot"): HEAD,
    ("POST", "/alarms/{alarm_id}/ack"): HEAD,
    ("GET", "/visitors"): HEAD,
    ("POST", "/visitors"): HEAD,
    ("GET", "/import"): HEAD,
    ("POST", "/import"): HEAD,
    ("GET", "/tenants.csv"): HEAD,
    ("GET", "/import/template.csv"): HEAD,
    ("GET", "/police"): POLICE,
    ("GET", "/police/snapshot/{event_id}"): POLICE,
    ("GET", "/police/export.csv"): POLICE,
    ("POST", "/police/reveal/{tenant_id}"): POLICE,
    ("POST", "/police/hold/{event_id}"): POLICE,
    ("GET", "/police/audit"): POLICE,
    ("GET", "/installer"): ("installer",),
}
USERS = {"building_head": "head", "police": "police", "installer": "installer"}


def call(client: TestClient, method: str, path: str, csrf: str | None) -> int:
    url = path.format(tenant_id=TENANT_ID, event_id=EVENT_ID, number=1234, alarm_id=1, lang="en")
    if not path.startswith("/api/") and method == "POST":
        data = {"csrf_token": csrf or ""}
        response = client.request(method, url, data=data, follow_redirects=False)
    else:
        headers = {"X-CSRF-Token": csrf} if csrf else {}
        response = client.request(method, url, headers=headers, json={}, follow_redirects=False)
    if response.status_code == 303 and response.headers["location"] == "/login":
        return 401  # a page's way of saying "log in first"
    return int(response.status_code)


@pytest.fixture(autouse=True)
def quick_enrollment_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_head, "ENROLL_WAIT_SECONDS", 0.05)


def test_the_table_covers_every_route(gateway: BuildingGateway) -> None:
    """Every route is in the table, and its dependencies let exactly the table's roles in."""
    table = {route: None if allowed == PUBLIC else frozenset(allowed)
             for route, allowed in ACCESS.items()}  # fmt: skip
    assert route_roles(create_app(gateway)) == table


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
def test_anonymous_callers_reach_only_public_routes(client: TestClient, method: str,
                                                    path: str) -> None:  # fmt: skip
    status = call(client, method, path, None)
    if (method, path) == ("GET", "/setup"):
        assert status == 401  # no setup code issued: back to the login page
    elif ACCESS[(method, path)] == PUBLIC:
        assert status not in (401, 403)
    else:
        assert status == 401


@pytest.mark.parametrize("role", sorted(USERS))
def test_each_role_reaches_its_routes_and_no_other(client: TestClient, role: str) -> None:
    csrf = login(client, USERS[role])
    for (method, path), allowed in sorted(ACCESS.items()):
        if path in ("/api/v1/logout", "/logout", "/password") or allowed == PUBLIC:
            continue
        status = call(client, method, path, csrf)
        if role in allowed:
            assert status not in (401, 403), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)
