"""The JSON API of SPEC 4, under /api/v1.

Logins, tenants (building head), the entry log and its snapshots (police, audited), alarms,
the audit log. ID numbers and phones leave only masked. Store errors map to HTTP in one place
(`app.py`): ValidationError 422, NotFound 404, Conflict 409.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from gateway.store import (
    CardStatus,
    Store,
    TenantCreate,
    TenantStatus,
    TenantUpdate,
)
from gateway.store.audit import ExportState, clean_purpose
from gateway.web.deps import (
    AnyUser,
    BuildingHead,
    HeadOrPolice,
    Police,
    StateDep,
    StoreDep,
    snapshot_response,
)
from gateway.web.police_filters import LIMIT_MAX, filter_params, police_query
from web_security.login import LoginRefused, end_session, log_in, remote_address
from web_security.purpose import PURPOSE_MAX

router = APIRouter(prefix="/api/v1")

_PURPOSE = Field(min_length=1, max_length=200, description="The case number or reason.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    role: Literal["building_head", "police", "installer"]
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header.")


class CardJson(_Strict):
    number: int = Field(ge=0, le=2**32 - 1, description="SPEC 6: the Wiegand number.")
    status: CardStatus = "active"


class TenantOut(BaseModel):
    """A tenant, ID number and phone masked (SPEC 4)."""

    id: str
    name: str
    id_number: str = Field(examples=["4403**********1234"])
    phone: str = Field(examples=["138****8000"])
    room: str
    valid_from: date
    valid_until: date
    status: TenantStatus
    cards: list[CardJson]


class TenantIn(_Strict):
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)
    phone: str = Field(min_length=1, max_length=32)
    room: str = Field(min_length=1, max_length=32)
    valid_from: date
    valid_until: date
    status: TenantStatus = "active"
    cards: list[CardJson] = Field(default_factory=list, max_length=16)


class TenantPatch(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    id_number: str | None = Field(default=None, min_length=1, max_length=32)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    room: str | None = Field(default=None, min_length=1, max_length=32)
    valid_from: date | None = None
    valid_until: date | None = None
    status: TenantStatus | None = None


class EntriesOut(BaseModel):
    entries: list[dict[str, Any]] = Field(description="Events as journaled (SPEC 6).")
    next_cursor: str | None


class AlarmOut(BaseModel):
    id: int
    kind: str
    raised_at: str
    door: str | None
    event_seq: int | None
    detail: str
    acknowledged_by: str | None
    acknowledged_at: str | None


class AuditOut(BaseModel):
    seq: int
    ts: str
    username: str
    role: str
    remote: str | None
    action: str
    purpose: str | None
    params: dict[str, Any]
    records: int
    hash: str
    export_state: ExportState | None = Field(
        default=None,
        description="For an `export.started` row: `finished`, `cut` (the download ended early,"
        " its `export.cut` row says after how many rows) or `unfinished` (no end row: the"
        " gateway stopped or was killed mid-download, or it is still running).",
    )


class Problem(BaseModel):
    """Why a request failed; `field` names the input at fault for a 409."""

    detail: str
    field: str | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("Not logged in"),
    403: _problem("Wrong role, or missing X-CSRF-Token"),
}
_NO_TENANT = {**_ERRORS, 404: _problem("No such tenant"),
              409: _problem("A card belongs to another tenant, or the person is registered")}


def invalid(where: str, field: str, message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, for checks the schema cannot express."""
    return RequestValidationError([{"loc": (where, field), "msg": message, "type": "value_error",
                                    "input": None}])  # fmt: skip


# ------------------------------------------------------------------------------- login


@router.post("/login", responses={401: _problem("Bad credentials"),
                                  403: _problem("A one-time password, not changed yet"),
                                  429: _problem("Too many failures for this username"),
                                  503: _problem("Too many logins being checked at once, or"
                                                " too many sessions open")})  # fmt: skip
def login(body: LoginIn, request: Request, response: Response, state: StateDep,
          store: StoreDep) -> LoginOut:  # fmt: skip
    """Log in; sets the HttpOnly session cookie."""
    try:
        session = log_in(request, response, state, store.verify_user, body.username,
                         body.password, one_time_ok=False)  # fmt: skip
    except LoginRefused as refused:
        raise HTTPException(refused.status, refused.detail, headers=refused.headers) from None
    return LoginOut(role=session.role, csrf_token=session.csrf_token)


@router.post("/logout", status_code=204, responses=_ERRORS)
def logout(request: Request, state: StateDep, _user: AnyUser) -> Response:
    """End the session on the server."""
    response = Response(status_code=204)
    end_session(request, response, state)
    return response


# ----------------------------------------------------------------------------- tenants


def _tenant_out(store: Store, tenant_id: str) -> TenantOut:
    return TenantOut.model_validate(store.get_tenant(tenant_id).public_json())


@router.get("/tenants", responses=_ERRORS)
def list_tenants(
    _user: BuildingHead,
    store: StoreDep,
    q: Annotated[str | None, Query(max_length=64, description="Part of a name")] = None,
    room: Annotated[str | None, Query(max_length=32)] = None,
    status: TenantStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[TenantOut]:
    """Tenants by room and name, masked."""
    found = store.search_tenants(name=q or None, room=room or None, status=status,
                                 limit=limit, offset=offset)  # fmt: skip
    return [TenantOut.model_validate(t.public_json()) for t in found]


@router.post("/tenants", status_code=201, responses=_NO_TENANT)
def add_tenant(body: TenantIn, _user: BuildingHead, store: StoreDep) -> TenantOut:
    """Register a tenant (and their cards)."""
    tenant = store.add_tenant(TenantCreate(
        name=body.name, id_number=body.id_number, phone=body.phone, room=body.room,
        valid_from=body.valid_from, valid_until=body.valid_until, status=body.status,
        cards=tuple(card.number for card in body.cards),
    ))  # fmt: skip
    for card in body.cards:
        if card.status != "active":
            store.set_card_status(card.number, card.status)
    return _tenant_out(store, tenant.id)


@router.get("/tenants/{tenant_id}", responses=_NO_TENANT)
def get_tenant(tenant_id: str, _user: BuildingHead, store: StoreDep) -> TenantOut:
    """One tenant, masked."""
    return _tenant_out(store, tenant_id)


@router.patch("/tenants/{tenant_id}", responses=_NO_TENANT)
def patch_tenant(tenant_id: str, body: TenantPatch, _user: BuildingHead,
                 store: StoreDep) -> TenantOut:  # fmt: skip
    """Change some fields; `status` suspends, reactivates or moves out."""
    changes = body.model_dump(exclude_unset=True, exclude={"status"})
    if changes:
        store.update_tenant(tenant_id, TenantUpdate(**changes))
    if body.status is not None:
        store.set_tenant_status(tenant_id, body.status)
    return _tenant_out(store, tenant_id)


@router.delete("/tenants/{tenant_id}", status_code=204,
               responses=_NO_TENANT)  # fmt: skip
def delete_tenant(tenant_id: str, _user: BuildingHead, store: StoreDep) -> Response:
    """Remove a tenant and their cards; their past entries stay in the log."""
    store.remove_tenant(tenant_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- entries


@router.get("/entries", responses=_ERRORS)
def entries(
    request: Request,
    user: Police,
    store: StoreDep,
    purpose: Annotated[str, Query(min_length=1, max_length=PURPOSE_MAX,
                                  description="The case number or reason (audited); it must"
                                  " show something, and is stored trimmed.")],
    since: datetime | None = None,
    until: datetime | None = None,
    door: Annotated[str | None, Query(max_length=32, description="A door's name")] = None,
    room: Annotated[str | None, Query(max_length=32)] = None,
    tenant_id: Annotated[str | None, Query(max_length=36, description="A UUID")] = None,
    card: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    result: Literal["granted", "denied"] | None = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = 100,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> EntriesOut:
    """The entry log, newest first; every query is written to the audit log.

    Every filter is checked against its bounds before anything is read (`since` and `until`
    within 1970..2099 and in that order, a door's name, a tenant's UUID, a cursor a search
    returned): out of bounds is a 422 naming it, never an empty or wider search.
    """
    case = clean_purpose(purpose)
    query = police_query(since=since, until=until, door=door, room=room, tenant_id=tenant_id,
                         card=card, result=result, limit=limit, cursor=cursor)  # fmt: skip
    page = store.query_events(query)
    store.audit(username=user.username, role=user.role, remote=remote_address(request),
                action="entries.query", purpose=case,
                params={**filter_params(query), "limit": limit},
                records=len(page.entries))  # fmt: skip
    return EntriesOut(entries=[e.body for e in page.entries], next_cursor=page.next_cursor)


@router.get(
    "/entries/{event_id}/snapshot",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/jpeg": {}}, "description": "The JPEG"},
               404: _problem("No such entry, or it has no snapshot (any more)"),
               409: _problem("The file does not match the sha256 its event recorded")},
)  # fmt: skip
def entry_snapshot(
    event_id: str,
    request: Request,
    user: Police,
    store: StoreDep,
    state: StateDep,
    purpose: Annotated[str | None, Query(max_length=PURPOSE_MAX)] = None,
) -> Response:
    """The entry's snapshot, checked against the sha256 its event recorded; audited."""
    case = clean_purpose(purpose) if purpose else None  # optional, but if given, it says something
    return snapshot_response(request, user, store, state, event_id, case)


# ------------------------------------------------------------------------ alarms, audit


@router.get("/alarms", responses=_ERRORS)
def alarms(
    _user: HeadOrPolice,
    store: StoreDep,
    open_only: bool = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlarmOut]:
    """Alarms, newest first."""
    return [AlarmOut.model_validate(a, from_attributes=True)
            for a in store.list_alarms(open_only=open_only, limit=limit)]  # fmt: skip


@router.get("/audit", responses=_ERRORS)
def audit_log(
    request: Request,
    user: Police,
    store: StoreDep,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first; reading it is audited too.

    An export is two rows: `export.started` before its first row is sent, then
    `export.finished` or `export.cut` (`params.start` names the start) with the rows sent.
    """
    rows = store.audit_page(before=before, limit=limit)
    store.audit(username=user.username, role=user.role, remote=remote_address(request),
                action="audit.view", purpose=None,
                params={"before": before, "limit": limit}, records=len(rows))  # fmt: skip
    return [AuditOut.model_validate(r, from_attributes=True) for r in rows]
