"""Who may call what: every route of the app against this table, role by role.

A new route without a row here fails the first test, so none can ship unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from gateway.web import pages_head
from gateway.web.app import create_app

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


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's lazily included router
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, APIRoute):
            for method in route.methods or ():
                yield method, prefix + route.path


def routes(gateway: BuildingGateway) -> set[tuple[str, str]]:
    """Every route of the app, pages (not in the OpenAPI document) included."""
    found = set(_walk(create_app(gateway).router.routes))
    paths = create_app(gateway).openapi()["paths"]
    assert {(m.upper(), p) for p, item in paths.items() for m in item} <= found
    return found


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
    assert routes(gateway) == set(ACCESS)


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
