"""Who may call what: every route of the app against this table, role by role.

A new route without a row here fails the first test, so none can ship unchecked.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.web.app import create_app

from .conftest import BuildingGateway, login

PUBLIC = "public"
ANY = ("building_head", "police", "installer")
EVENT_ID = "0b8f3f9e-7a57-4f0c-9d51-3b1f2f6c9a10"
TENANT_ID = "00000000-0000-4000-8000-000000000001"

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
}
USERS = {"building_head": "head", "police": "police", "installer": "installer"}


def routes(gateway: BuildingGateway) -> set[tuple[str, str]]:
    """Every route, as the OpenAPI document lists them (included routers and all)."""
    paths = create_app(gateway).openapi()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def call(client: TestClient, method: str, path: str, csrf: str | None) -> int:
    url = path.format(tenant_id=TENANT_ID, event_id=EVENT_ID)
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return int(client.request(method, url, headers=headers, json={}).status_code)


def test_the_table_covers_every_route(gateway: BuildingGateway) -> None:
    assert routes(gateway) == set(ACCESS)


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
def test_anonymous_callers_reach_only_public_routes(client: TestClient, method: str,
                                                    path: str) -> None:  # fmt: skip
    status = call(client, method, path, None)
    if ACCESS[(method, path)] == PUBLIC:
        assert status not in (401, 403)
    else:
        assert status == 401


@pytest.mark.parametrize("role", sorted(USERS))
def test_each_role_reaches_its_routes_and_no_other(client: TestClient, role: str) -> None:
    csrf = login(client, USERS[role])
    for (method, path), allowed in sorted(ACCESS.items()):
        if path == "/api/v1/logout" or allowed == PUBLIC:
            continue
        status = call(client, method, path, csrf)
        if role in allowed:
            assert status not in (401, 403), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)
