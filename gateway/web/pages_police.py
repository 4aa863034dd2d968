"""Police pages: the entry log with its pictures, CSV export, revealing an ID number, the audit
log; and the installer's diagnostics. Every police query, export, picture and reveal is
written to the audit log before anything is shown.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import tzinfo
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.clock import shown
from gateway.store import SNAPSHOT_TYPES, NotFound, Store, ValidationError
from gateway.store.audit import clean_purpose
from gateway.web.csvstream import CsvDownload
from gateway.web.deps import (
    StateDep,
    StoreDep,
    entry_with_snapshot,
    remote_address,
    snapshot_bytes,
    snapshot_intact,
)
from gateway.web.i18n import WORDS, explain, word
from gateway.web.pages import (
    CsrfField,
    InstallerPage,
    PolicePage,
    check_csrf,
    language,
    render,
)
from gateway.web.police_filters import filter_params, form_query
from gateway.web.sessions import Session

router = APIRouter(include_in_schema=False)
# An export streams every row its filters select, a page at a time: memory stays one page
# however large the selection, and a cap would hand the police a file silently cut short.
EXPORT_PAGE = 500
_SEQ = re.compile(r"[0-9]{1,19}")


def _refusal(request: Request, exc: ValidationError) -> str:
    """Why an input was refused, in the page's language: a refusal the store words the same
    everywhere (i18n.explain), else the filter's own (`invalid.<field>` in i18n.py)."""
    lang = language(request)
    if exc.code is not None:
        return explain(exc, lang)
    key = f"invalid.{exc.field}"
    return word(key, lang) if key in WORDS else str(exc)


def _audit(store: Store, user: Session, request: Request, action: str, purpose: str | None,
           params: dict[str, Any], records: int) -> int:  # fmt: skip
    """Append the audit row; its seq."""
    return store.audit(username=user.username, role=user.role, remote=remote_address(request),
                       action=action, purpose=purpose, params=params,
                       records=records).seq  # fmt: skip


@router.get("/police", response_class=HTMLResponse)
def police_page(
    request: Request,
    user: PolicePage,
    store: StoreDep,
    state: StateDep,
    purpose: str = "",
    since: str = "", until: str = "", door: str = "", room: str = "", tenant_id: str = "",
    card: str = "", result: str = "", cursor: str = "",
) -> Response:  # fmt: skip
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result, "cursor": cursor}  # fmt: skip
    if not purpose and not any(form.values()):  # the page opened: not a search
        return render(request, "police.html", user, form=form, purpose="", searched=False)
    try:  # every input checked before anything is read
        case = clean_purpose(purpose)
        query = form_query(form, limit=50, zone=state.gateway.zone)
    except ValidationError as exc:
        return render(request, "police.html", user, status=422, form=form, purpose=purpose,
                      searched=False, error=_refusal(request, exc))  # fmt: skip
    page = store.query_events(query)
    _audit(store, user, request, "entries.query", case, filter_params(query), len(page.entries))
    names = _names(store, [e.body.get("tenant_id") for e in page.entries])
    return render(request, "police.html", user, form=form, purpose=case, searched=True,
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
                    state: StateDep, purpose: str = "") -> Response:  # fmt: skip
    try:  # a purpose is optional here, but when given it must say something
        case = clean_purpose(purpose) if purpose else None
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    entry = entry_with_snapshot(store, event_id)
    data = snapshot_bytes(state, entry)
    _audit(store, user, request, "snapshot.view", case, {"event_id": event_id},
           1 if data else 0)  # fmt: skip
    if data is None:
        raise HTTPException(404, "the snapshot is no longer kept")
    if not snapshot_intact(entry, data):
        raise HTTPException(409, "the snapshot file does not match its event's sha256")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/police/export.csv")
def police_export(request: Request, user: PolicePage, store: StoreDep, state: StateDep,
                  purpose: str = "", since: str = "", until: str = "", door: str = "",
                  room: str = "", tenant_id: str = "", card: str = "", result: str = "",
                  ) -> Response:  # fmt: skip
    """The whole selection as CSV, streamed a page at a time.

    Audited before the first row leaves (`export.started`, with the query and the purpose), and
    again when the download ends (`export.finished`, or `export.cut` when the client went away),
    with the rows sent. A process killed in between leaves the start row, which then reads as
    unfinished.
    """
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result}  # fmt: skip
    try:  # bad input answers before anything is read, and so before the download starts
        case = clean_purpose(purpose)
        query = form_query(form, limit=EXPORT_PAGE, zone=state.gateway.zone)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    first = store.query_events(query)  # a store error too answers before the download starts
    start = _audit(store, user, request, "export.started", case, filter_params(query), 0)

    def pages() -> Iterator[list[list[object]]]:
        page, sent = first, 0
        while True:
            yield [_export_row(entry.body, state.gateway.zone) for entry in page.entries]
            sent += len(page.entries)
            if page.next_cursor is None:
                return
            page = store.query_events(replace(query, cursor=page.next_cursor))

    def ended(rows: int, finished: bool) -> None:
        _audit(store, user, request, "export.finished" if finished else "export.cut", None,
               {"start": start}, rows)  # fmt: skip

    return CsvDownload(EXPORT_HEADER, pages(), filename="entries.csv", on_end=ended)


EXPORT_HEADER = ("ts", "event_id", "seq", "type", "door", "card", "tenant_id", "room", "reason",
                 "snapshot_sha256")  # fmt: skip


def _export_row(body: dict[str, Any], zone: tzinfo) -> list[object]:
    snapshot = body.get("snapshot") or {}
    return [shown(body["ts"], zone), body["event_id"], body["seq"], body["type"],
            body.get("door", ""), body.get("credential", {}).get("number", ""),
            body.get("tenant_id", ""),
            body.get("room", ""), body.get("reason", ""), snapshot.get("sha256", "")]


@router.post("/police/hold/{event_id}")
def hold_snapshot(request: Request, event_id: str, user: PolicePage, store: StoreDep,
                  csrf_token: CsrfField,
                  purpose: Annotated[str, Form()] = "",
                  ) -> Response:  # fmt: skip
    """Keep an entry's snapshot past retention for a case (audited)."""
    check_csrf(user, csrf_token)
    try:
        case = clean_purpose(purpose)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    entry_with_snapshot(store, event_id)
    store.hold_snapshot(event_id, case, user.username)
    _audit(store, user, request, "snapshot.hold", case, {"event_id": event_id}, 1)
    return RedirectResponse(f"/police?purpose={quote(case)}&held={event_id}", status_code=303)


@router.post("/police/reveal/{tenant_id}", response_class=HTMLResponse)
def reveal(request: Request, tenant_id: str, user: PolicePage, store: StoreDep,
           csrf_token: CsrfField,
           purpose: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    """The full ID number of one tenant: a separate action, audited before it is shown."""
    check_csrf(user, csrf_token)
    try:
        case = clean_purpose(purpose)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    tenant = store.get_tenant(tenant_id)
    _audit(store, user, request, "id_number.reveal", case, {"tenant_id": tenant_id}, 1)
    return render(request, "reveal.html", user, tenant=tenant,
                  id_number=store.reveal_id_number(tenant_id), purpose=case)  # fmt: skip


@router.get("/police/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: PolicePage, store: StoreDep,
               before: str = "") -> Response:  # fmt: skip
    if before and not (_SEQ.fullmatch(before) and 1 <= int(before) <= 2**63 - 1):
        return render(request, "error.html", user, status=422,
                      error_text=word("invalid.before", language(request)))  # fmt: skip
    start = int(before) if before else None
    rows = store.audit_page(before=start, limit=100)
    _audit(store, user, request, "audit.view", None, {"before": start}, len(rows))
    return render(request, "audit.html", user, rows=rows, chain_ok=store.verify_audit().ok)


@router.get("/installer", response_class=HTMLResponse)
def installer_page(request: Request, user: InstallerPage, state: StateDep) -> Response:
    """Diagnostics only: readers, bus errors, camera, uplink queue, disk, clock."""
    health = state.gateway.health()
    store = state.gateway.store
    queue_depth = None if store is None else store.queue_depth()
    return render(request, "installer.html", user, health=health, queue_depth=queue_depth,
                  disk_free_mb=health.get("disk_free_mb"))  # fmt: skip
