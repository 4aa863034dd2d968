"""Schemathesis property test: every operation of the OpenAPI document, in-process.

The schema is read once from an app built over a stub gateway (`create_app` does no I/O and
the document does not depend on the gateway). Each test, one per operation and caller, sends
its cases to its own app over the real store of `conftest.py`, anonymous or logged in through
the API as one role. A 5xx fails, and so does any response the document does not describe:
an undocumented status, content type or header, or a body that violates its schema.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import status_code_conformance

from gateway.camera.snapshots import SnapshotStore
from gateway.store import Store
from gateway.web.app import create_app
from web_security.login import COOKIE, CSRF_HEADER

from .conftest import login

ROLES = [None, "head", "police", "installer"]

# FastAPI's own answer to a body it cannot even decode (e.g. not UTF-8): `400 {"detail": ...}`,
# raised in fastapi/routing.py before the route runs, so it is in no operation's document.
_UNPARSEABLE_BODY = {"detail": "There was an error parsing the body"}

CONFIG = schemathesis.Config.from_dict(
    {
        # Fuzzing only: the coverage phase (boundary values, unexpected methods) adds ~40% to the
        # run for nothing the fuzzer does not find here too.
        "phases": {"coverage": {"enabled": False}},
        "checks": {
            # The store validates more than the document can say (an ID number's checksum, an
            # opaque paging cursor), and SPEC 4 / api.py say its ValidationError is a 422. So a
            # schema-valid request may be refused with 422; that the 422's body matches the
            # document is still checked by response_schema_conformance. 5xx stay failures (they
            # are also not_a_server_error's).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"],
            },
            # Should the coverage phase be turned on, its unexpected-method probes meet Starlette,
            # not the app: each method of a path is its own Route, and a 405 lists only the methods
            # of the first route matching the path (`OPTIONS /api/v1/tenants` answers `Allow: GET`
            # though POST exists). Nothing in gateway/web decides it; the document says nothing
            # about Allow.
            "allow_header_conformance": {"enabled": False},
        },
    }
)


class _SchemaOnly:
    """Enough of a gateway to build the app and read its OpenAPI document."""

    store: Store | None = None
    snapshots = SnapshotStore(Path("/nonexistent"))
    zone: tzinfo = UTC
    doors: dict[str, str | None] = {"main": None}  # noqa: RUF012 (read only)

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SchemaOnly()), config=CONFIG)


def _status_code_conformance(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """The built-in check, except FastAPI's 400 for an undecodable body (see above)."""
    if response.status_code == 400 and _json(response) == _UNPARSEABLE_BODY:
        return None
    return status_code_conformance(ctx, response, case)


def _json(response: schemathesis.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@SCHEMA.parametrize()
@pytest.mark.parametrize("username", ROLES, ids=["anonymous", *ROLES[1:]])
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])  # fmt: skip
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], client: TestClient, username: str | None
) -> None:
    cookies: dict[str, str] = {}
    headers: dict[str, str] = {}
    if username is not None:
        # One login per test, before any case, so a fuzzed POST /login (counted by this test's
        # own throttle) cannot lock the user out first. Logout ends the session, so that
        # operation logs in afresh for each case.
        if COOKIE not in client.cookies or case.operation.path.endswith("/logout"):
            client.headers[CSRF_HEADER] = login(client, username)
        headers[CSRF_HEADER] = client.headers[CSRF_HEADER]
        cookies[COOKIE] = client.cookies[COOKIE]
    case.call_and_validate(app=client.app, headers=headers, cookies=cookies,
                           excluded_checks=[status_code_conformance],
                           additional_checks=[_status_code_conformance])  # fmt: skip
