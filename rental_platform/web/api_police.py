"""The police part of the JSON API (SPEC 8): entries across the city, their pictures, the audit.

Every filter is checked by the search layer (`rental_platform.search`) before anything is
read; a bad one is a 422 with its `code`, `field` and `said` (app.py), never a wider search.
Every search and picture is audited on the primary before it is answered, even when it was
read from the standby (`--search-db`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from ..search import parse_entry_filter, search_entries
from .api import ERRORS, problem
from .deps import Police, StateDep

router = APIRouter(prefix="/api/v1")

_TEXT = Query(max_length=64)


class EntriesOut(BaseModel):
    entries: list[dict[str, Any]] = Field(
        description="Each the event's JSON (SPEC 6) plus `building` (its code) and `name`"
        " (the tenant's, when known)"
    )
    next_cursor: str | None


@router.get("/entries", responses=ERRORS)
def entries(
    request: Request,
    user: Police,
    state: StateDep,
    purpose: Annotated[
        str | None, Query(max_length=256, description="Required: the case number or reason")
    ] = None,
    street: Annotated[str | None, _TEXT] = None,
    community: Annotated[str | None, _TEXT] = None,
    building: Annotated[str | None, _TEXT] = None,
    gateway_id: Annotated[str | None, _TEXT] = None,
    card: Annotated[str | None, _TEXT] = None,
    id_number: Annotated[str | None, _TEXT] = None,
    room: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[str | None, _TEXT] = None,
    until: Annotated[str | None, _TEXT] = None,
    result: Annotated[str | None, _TEXT] = None,
    limit: Annotated[str | None, _TEXT] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EntriesOut:
    """Entries across buildings, newest first; the query is audited before it is answered.

    The parameters are SPEC 8's; each is checked by the search layer as a whole (the
    signature above only documents them and bounds their length).
    """
    entry_filter = parse_entry_filter(request.query_params.multi_items(), state.primary.sealer)
    page = state.reads.run(lambda store: search_entries(store, entry_filter))
    state.record(
        request,
        user,
        "entries.query",
        entry_filter.purpose,
        entry_filter.audit_params(),
        len(page.entries),
    )
    return EntriesOut(entries=page.entries, next_cursor=page.next_cursor)


@router.get(
    "/entries/{event_id}/snapshot",
    response_class=Response,
    responses={
        **ERRORS,
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG"},
        404: problem("No such entry, or no picture (any more)"),
    },
)
def entry_snapshot(
    event_id: str,
    request: Request,
    user: Police,
    state: StateDep,
    purpose: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """The entry's picture, checked against the sha256 its event recorded; audited first,
    whether or not the picture is there."""
    picture = state.picture(request, user, event_id, purpose)
    if picture is None:
        raise HTTPException(404, "no picture for this entry (any more)")
    return Response(picture.jpeg, media_type="image/jpeg")


class AuditOut(BaseModel):
    seq: int
    at: datetime = Field(description="When, in the city's zone")
    username: str
    role: str
    remote: str | None
    action: str
    purpose: str | None
    params: dict[str, Any]
    records: int
    mac: str = Field(description="The row's link in the chain (hex)")


@router.get("/audit", responses=ERRORS)
def audit_log(
    request: Request,
    user: Police,
    state: StateDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first, below `before`; reading it is audited too."""
    rows = state.audit.run(lambda log: log.page(before=before, limit=limit))
    state.record(request, user, "audit.view", None, {"before": before, "limit": limit}, len(rows))
    return [
        AuditOut(
            seq=r.seq,
            at=datetime.fromtimestamp(r.at, state.zone),
            username=r.username,
            role=r.role,
            remote=r.remote,
            action=r.action,
            purpose=r.purpose,
            params=r.params,
            records=r.records,
            mac=r.mac,
        )
        for r in rows
    ]
