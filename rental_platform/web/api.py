"""The JSON API of SPEC 8, under /api/v1: login, logout, the fleet; police search and the audit
log in `api_police.py`.

The same login, session, CSRF, lockout and masking rules as the gateway's (SPEC 4), from
web_security. Refusals are JSON with a `detail` (English, for programs and logs), and for a
bad input a `code`, the `field` at fault and `said` (the same in the caller's language, for
a person): never a silently wider answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from web_security.login import LoginRefused, end_session, log_in

from ..store.fleet import GatewayHealth
from .clock import moment
from .deps import AnyUser, PoliceOrDistrict, StateDep, WebState
from .filters import fleet_area

router = APIRouter(prefix="/api/v1")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    role: Literal["police", "district"]
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header.")


class Problem(BaseModel):
    """Why a request failed: `code` and `field` for a bad input, `said` for a person."""

    detail: str
    code: str | None = None
    field: str | None = None
    said: str | None = None


def problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("Not logged in"),
    403: problem("Wrong role, or missing X-CSRF-Token"),
    422: problem("A bad filter or parameter: `code`, `field` and `said` say which and why"),
    503: problem("The database cannot be reached just now"),
}


@router.post(
    "/login",
    responses={
        401: problem("Bad credentials"),
        403: problem("A one-time password, not changed yet"),
        429: problem("Too many failures for this username"),
        503: problem("Too many logins being checked at once, or too many sessions open"),
    },
)
def login(body: LoginIn, request: Request, response: Response, state: StateDep) -> LoginOut:
    """Log in; sets the HttpOnly, SameSite=Strict session cookie (Secure under HTTPS)."""
    try:
        session = log_in(
            request, response, state, state.verify, body.username, body.password, one_time_ok=False
        )
    except LoginRefused as refused:
        raise HTTPException(refused.status, refused.detail, headers=refused.headers) from None
    return LoginOut(role=session.role, csrf_token=session.csrf_token)


@router.post("/logout", status_code=204, responses=ERRORS)
def logout(request: Request, state: StateDep, _user: AnyUser) -> Response:
    """End the session on the server (every instance)."""
    response = Response(status_code=204)
    end_session(request, response, state)
    return response


class GatewayOut(BaseModel):
    """A gateway's state (SPEC 8), then what the fleet page shows besides."""

    gateway_id: str
    building: str | None = Field(description="Its building code, 440305001002-0042")
    state: Literal["online", "offline"]
    since: datetime | None = Field(description="In this state since, in the building's offset")
    queue_depth: int | None
    registry_version: int | str | None
    version: str | None
    clock_synced: bool | None
    last_heard: datetime | None = Field(description="Its last status or event")
    silent: bool = Field(description="Nothing heard for longer than the platform's threshold")
    readers_offline: list[str] = Field(description="Doors whose reader is offline")
    camera_error: str | None = Field(description="The camera's last failure, while it lasts")


class GatewaysOut(BaseModel):
    gateways: list[GatewayOut]


def gateway_out(row: GatewayHealth, state: WebState) -> GatewayOut:
    def at(epoch: float | None) -> datetime | None:
        return None if epoch is None else moment(epoch, row.offset, state.zone)

    return GatewayOut(
        gateway_id=row.gateway_id,
        building=row.building,
        state="online" if row.state == "online" else "offline",
        since=at(row.since),
        queue_depth=row.queue_depth,
        registry_version=row.registry_version,
        version=row.version,
        clock_synced=row.clock_synced,
        last_heard=at(row.last_heard),
        silent=row.silent,
        readers_offline=row.readers_offline,
        camera_error=row.camera_error,
    )


@router.get("/gateways", responses=ERRORS)
def gateways(
    _user: PoliceOrDistrict,
    state: StateDep,
    street: Annotated[
        str | None, Query(max_length=16, description="District and street: 440305001")
    ] = None,
    community: Annotated[
        str | None, Query(max_length=16, description="… and community: 440305001002")
    ] = None,
) -> GatewaysOut:
    """Every gateway's state, on a street or in a community when asked (the parts of the
    building code, SPEC 8)."""
    area = fleet_area(street, community, state.primary.sealer)
    rows = state.fleet(area=area)
    return GatewaysOut(gateways=[gateway_out(row, state) for row in rows])
