"""Police pages: the entry log with its pictures, CSV export, revealing an ID number, the audit
log; and the installer's diagnostics. Every police query, export, picture and reveal is
written to the audit log before anything is shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from gateway.store import SNAPSHOT_TYPES, EventQuery, NotFound, Store
from gateway.store.validation import parse_card_number
from gateway.web.api import ENTRY_TYPES
from gateway.web.csvstream import csv_chunks
from gateway.web.deps import (
    StateDep,
    StoreDep,
    entry_with_snapshot,
    remote_address,
    snapshot_bytes,
    snapshot_intact,
)
from gateway.web.pages import (
    CsrfField,
    InstallerPage,
    PolicePage,
    building_now,
    check_csrf,
    render,
)
from gateway.web.sessions import Session

router = APIRouter(include_in_schema=False)
EXPORT_MAX = 1_000_000


def _query(q: dict[str, str], limit: int, zone: tzinfo | None) -> EventQuery:
    def moment(key: str) -> datetime | None:
        text = q.get(key, "")
        if not text:
            return None
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:  # the form's local time: the building's
            value = value.replace(tzinfo=zone) if zone else value.astimezone()
        return value

    card = q.get("card", "")
    number = parse_card_number(card) if card else None  # a ValidationError is a ValueError
    result = q.get("result", "")
    if result not in ("", "granted", "denied"):
        raise ValueError(f"result: {result!r} must be granted or denied")
    return EventQuery(
        since=moment("since"), until=moment("until"), types=ENTRY_TYPES,
        door=q.get("door") or None, room=q.get("room") or None,
        tenant_id=q.get("tenant_id") or None, card=number,
        result=result or None,  # type: ignore[arg-type]
        limit=limit, cursor=q.get("cursor") or None,
    )  # fmt: skip



def _audit(store: Store, user: Session, request: Request, action: str, purpose: str | None,
           params: dict[str, Any], records: int) -> None:  # fmt: skip
    store.audit(username=user.username, role=user.role, remote=remote_address(request),
                action=action, purpose=purpose, params=params, records=records)  # fmt: skip


@router.get("/police", response_class=HTMLResponse)
def police_page(
    request: Request,
    user: PolicePage,
    store: StoreDep,
    state: StateDep,
    purpose: Annotated[str, Query(max_length=200)] = "",
    since: str = "", until: str = "", door: str = "", room: str = "", tenant_id: str = "",
    card: str = "", result: str = "", cursor: str = "",
) -> Response:  # fmt: skip
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result, "cursor": cursor}  # fmt: skip
    if not purpose.strip():
        return render(request, "police.html", user, form=form, purpose="", searched=False)
    try:
        page = store.query_events(_query(form, 50, building_now(state).tzinfo))
    except ValueError as exc:
        return render(request, "police.html", user, status=422, form=form, purpose=purpose,
                      searched=False, error=str(exc))  # fmt: skip
    params = {k: v for k, v in form.items() if v}
    _audit(store, user, request, "entries.query", purpose.strip(), params, len(page.entries))
    names = _names(store, [e.body.get("tenant_id") for e in page.entries])
    return render(request, "police.html", user, form=form, purpose=purpose, searched=True,
                  entries=[e.body for e in page.entries], names=names,
                  next_cursor=page.next_cursor, snapshot_types=SNAPSHOT_TYPES)  # fmt: skip


def _names(store: Store, tenant_ids: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for tenant_id in {t for t in tenant_ids if isinstance(t, str)}:
        with contextlib.suppress(NotFound):  # removed since: the log keeps the id
            names[tenant_id] = store.get_tenant(tenant_id).name
    return names


@router.get("/police/snapshot/{event_id}")
def police_snapshot(request: Request, event_id: str, user: PolicePage, store: StoreDep,
                    state: StateDep, purpose: Annotated[str, Query(max_length=200)] = "",
                    ) -> Response:  # fmt: skip
    entry = entry_with_snapshot(store, event_id)
    data = snapshot_bytes(state, entry)
    _audit(store, user, request, "snapshot.view", purpose.strip() or None,
           {"event_id": event_id}, 1 if data else 0)  # fmt: skip
    if data is None:
        raise HTTPException(404, "the snapshot is no longer kept")
    if not snapshot_intact(entry, data):
        raise HTTPException(409, "the snapshot file does not match its event's sha256")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/police/export.csv")
def police_export(request: Request, user: PolicePage, store: StoreDep, state: StateDep,
                  purpose: Annotated[str, Query(min_length=1, max_length=200)],
                  since: str = "", until: str = "", door: str = "", room: str = "",
                  tenant_id: str = "", card: str = "", result: str = "",
                  ) -> Response:  # fmt: skip
    """The whole selection as CSV, streamed a page at a time; audited with its row count."""
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result}  # fmt: skip
    try:  # bad input and store errors answer before the download starts
        query = _query(form, 500, building_now(state).tzinfo)
        first = store.query_events(query)
    except ValueError as exc:
        return render(request, "error.html", user, status=422, error_text=str(exc))
    params = {k: v for k, v in form.items() if v}
    sent = [0]

    def pages() -> Iterator[list[list[object]]]:
        page = first
        while True:
            sent[0] += len(page.entries)
            yield [_export_row(entry.body) for entry in page.entries]
            if page.next_cursor is None or sent[0] >= EXPORT_MAX:
                return
            page = store.query_events(replace(query, cursor=page.next_cursor))

    def audited() -> Iterator[str]:
        try:
            yield from csv_chunks(EXPORT_HEADER, pages())
        finally:  # also when the download is cut off: what left the building is recorded
            _audit(store, user, request, "entries.export", purpose.strip(), params, sent[0])

    return StreamingResponse(audited(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="entries.csv"'})


EXPORT_HEADER = ("ts", "event_id", "seq", "type", "door", "card", "tenant_id", "room", "reason",
                 "snapshot_sha256")  # fmt: skip


def _export_row(body: dict[str, Any]) -> list[object]:
    snapshot = body.get("snapshot") or {}
    return [body["ts"], body["event_id"], body["seq"], body["type"], body.get("door", ""),
            body.get("credential", {}).get("number", ""), body.get("tenant_id", ""),
            body.get("room", ""), body.get("reason", ""), snapshot.get("sha256", "")]


@router.post("/police/hold/{event_id}")
def hold_snapshot(request: Request, event_id: str, user: PolicePage, store: StoreDep,
                  csrf_token: CsrfField,
                  purpose: Annotated[str, Form(min_length=1, max_length=200)],
                  ) -> Response:  # fmt: skip
    """Keep an entry's snapshot past retention for a case (audited)."""
    check_csrf(user, csrf_token)
    entry_with_snapshot(store, event_id)
    store.hold_snapshot(event_id, purpose, user.username)
    _audit(store, user, request, "snapshot.hold", purpose.strip(), {"event_id": event_id}, 1)
    return RedirectResponse(f"/police?purpose={quote(purpose)}&held={event_id}", status_code=303)


@router.post("/police/reveal/{tenant_id}", response_class=HTMLResponse)
def reveal(request: Request, tenant_id: str, user: PolicePage, store: StoreDep,
           csrf_token: CsrfField,
           purpose: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:  # fmt: skip
    """The full ID number of one tenant: a separate action, audited before it is shown."""
    check_csrf(user, csrf_token)
    tenant = store.get_tenant(tenant_id)
    _audit(store, user, request, "id_number.reveal", purpose.strip(),
           {"tenant_id": tenant_id}, 1)  # fmt: skip
    return render(request, "reveal.html", user, tenant=tenant,
                  id_number=store.reveal_id_number(tenant_id), purpose=purpose)  # fmt: skip


@router.get("/police/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: PolicePage, store: StoreDep,
               before: int | None = None) -> Response:  # fmt: skip
    rows = store.audit_page(before=before, limit=100)
    _audit(store, user, request, "audit.view", None, {"before": before}, len(rows))
    return render(request, "audit.html", user, rows=rows, chain_ok=store.verify_audit().ok)


@router.get("/installer", response_class=HTMLResponse)
def installer_page(request: Request, user: InstallerPage, state: StateDep) -> Response:
    """Diagnostics only: readers, bus errors, camera, uplink queue, disk, clock."""
    health = state.gateway.health()
    store = state.gateway.store
    queue_depth = None if store is None else store.queue_depth()
    return render(request, "installer.html", user, health=health, queue_depth=queue_depth,
                  disk_free_mb=health.get("disk_free_mb"))  # fmt: skip
