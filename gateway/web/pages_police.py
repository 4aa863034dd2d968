"""Police pages: the entry log with its pictures, CSV export, revealing an ID number, the audit
log; and the installer's diagnostics. Every police query, export, picture and reveal is
written to the audit log before anything is shown.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from gateway.store import SNAPSHOT_TYPES, EventQuery, NotFound, Store
from gateway.web.api import ENTRY_TYPES
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
    result = q.get("result", "")
    return EventQuery(
        since=moment("since"), until=moment("until"), types=ENTRY_TYPES,
        door=q.get("door") or None, room=q.get("room") or None,
        tenant_id=q.get("tenant_id") or None, card=int(card) if card.isdigit() else None,
        result=result if result in ("granted", "denied") else None,  # type: ignore[arg-type]
        limit=limit, cursor=q.get("cursor") or None,
    )  # fmt: skip


_FIELDS = ("since", "until", "door", "room", "tenant_id", "card", "result", "cursor")


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
                  ) -> StreamingResponse:  # fmt: skip
    """The whole selection as CSV, streamed a page at a time; audited with its row count."""
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result}  # fmt: skip
    query = _query(form, 500, building_now(state).tzinfo)
    params = {k: v for k, v in form.items() if v}
    rows = _export_rows(store, query)

    def audited() -> Iterator[str]:
        count = 0
        try:
            for line, n in rows:
                count = n
                yield line
        finally:  # also when the download is cut off: what left the building is recorded
            _audit(store, user, request, "entries.export", purpose.strip(), params, count)

    return StreamingResponse(audited(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="entries.csv"'})


def _export_rows(store: Store, query: EventQuery) -> Iterator[tuple[str, int]]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ts", "event_id", "seq", "type", "door", "card", "tenant_id", "room",
                     "reason", "snapshot_sha256"])  # fmt: skip
    yield "\ufeff" + buffer.getvalue(), 0
    count = 0
    cursor = query.cursor
    while count < EXPORT_MAX:
        page = store.query_events(EventQuery(**{**_fields(query), "cursor": cursor}))
        buffer.seek(0)
        buffer.truncate()
        for entry in page.entries:
            body = entry.body
            snapshot = body.get("snapshot") or {}
            writer.writerow([body["ts"], body["event_id"], body["seq"], body["type"],
                             body.get("door", ""), body.get("credential", {}).get("number", ""),
                             body.get("tenant_id", ""), body.get("room", ""),
                             body.get("reason", ""), snapshot.get("sha256", "")])
        count += len(page.entries)
        yield buffer.getvalue(), count
        cursor = page.next_cursor
        if cursor is None:
            return


def _fields(query: EventQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in EventQuery.__dataclass_fields__}


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
    queue_depth = None
    disk_free_mb = None
    if store is not None:
        queue_depth = store.reader().execute(
            "SELECT count(*) FROM events WHERE seq > ?", (store.acked_seq(),)).fetchone()[0]
        disk_free_mb = shutil.disk_usage(store.data_dir).free // (1024 * 1024)
    return render(request, "installer.html", user, health=health, queue_depth=queue_depth,
                  disk_free_mb=disk_free_mb)  # fmt: skip
