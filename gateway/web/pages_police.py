"""Police pages: the entry log with its pictures, CSV export, revealing an ID number, the audit
log; and the installer's diagnostics. Every police query, export, picture and reveal is
written to the audit log before anything is shown.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import tzinfo
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.clock import shown
from gateway.parts.findings import said
from gateway.store import EventQuery, NotFound, Role, Store, Tenant, ValidationError
from gateway.store.audit import clean_purpose
from gateway.web.deps import (
    StateDep,
    StoreDep,
    WebState,
    entry_with_snapshot,
    snapshot_response,
)
from gateway.web.i18n import WORDS, Lang, door_label, explain, word
from gateway.web.pages import InstallerPage, PolicePage, render
from gateway.web.police_filters import UUID, filter_params, form_query
from web_security.csvstream import CsvDownload
from web_security.login import remote_address
from web_security.roles import CsrfField, check_csrf
from web_security.sessions import Session
from web_security.words import language

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


def _audit(store: Store, user: Session[Role], request: Request, action: str,
           purpose: str | None, params: dict[str, Any], records: int) -> int:  # fmt: skip
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
    card: str = "", result: str = "", cursor: str = "", held: str = "",
) -> Response:  # fmt: skip
    form = {"since": since, "until": until, "door": door, "room": room, "tenant_id": tenant_id,
            "card": card, "result": result, "cursor": cursor}  # fmt: skip
    page_of = partial(_police_html, request, user, state.gateway.doors, form, purpose)
    if not purpose and not any(form.values()):  # the page opened: not a search
        return page_of(searched=False)
    try:  # every input checked before anything is read
        case = clean_purpose(purpose)
        query = _page_query(form, state, limit=50)
    except ValidationError as exc:
        return page_of(status=422, searched=False, error=_refusal(request, exc))
    page = store.query_events(query)
    _audit(store, user, request, "entries.query", case, filter_params(query), len(page.entries))
    return page_of(searched=True, entries=[e.body for e in page.entries],
                   names=_names(store, [tenant_id] + [e.body.get("tenant_id")
                                                      for e in page.entries]),
                   next_cursor=page.next_cursor,
                   held=UUID.fullmatch(held) is not None)  # fmt: skip


def _police_html(request: Request, user: Session[Role], doors: Mapping[str, str | None],
                 form: dict[str, str], purpose: str, *, status: int = 200,
                 **context: Any) -> Response:  # fmt: skip
    """The search page; `link(**changes)` is this search's address with some filters changed,
    so every action on the results (page on, drill down, export, hold, reveal) keeps the rest."""
    here = {"purpose": purpose, **form}

    def link(path: str = "/police", **changes: str) -> str:
        return f"{path}?{_query_string({**here, **changes})}"

    return render(request, "police.html", user, status=status, form=form, purpose=purpose,
                  doors=doors, link=link, here=_query_string(here), **context)  # fmt: skip


def _query_string(values: Mapping[str, str]) -> str:
    """The search's filters (those given) as a query string, in one order."""
    return urlencode([(key, values[key]) for key in _KEPT if values.get(key)])


def _back_to(back: str, **changes: str) -> str:
    """The search page a form on it came from: only the search's own fields, so a posted
    `back` can lead nowhere else."""
    kept = {key: value for key, value in parse_qsl(back[:4096]) if key in _KEPT}
    return f"/police?{_query_string({**kept, **changes})}"


_KEPT = ("purpose", "since", "until", "door", "room", "tenant_id", "card", "result", "cursor",
         "held")  # fmt: skip


def _page_query(form: Mapping[str, str], state: WebState, *, limit: int) -> EventQuery:
    """The checked query of the page's form; a door the building does not have is refused
    (the form offers its doors only, so that is a link from elsewhere or a door renamed)."""
    query = form_query(form, limit=limit, zone=state.gateway.zone)
    if query.door is not None and query.door not in state.gateway.doors:
        raise ValidationError("door", f"the building has no door {query.door!r}",
                              code="no_such_door", params={"door": query.door})  # fmt: skip
    return query


def _tenants(store: Store, tenant_ids: list[Any]) -> dict[str, Tenant]:
    """The tenants (masked) behind these entries, by id; one removed since is left out (the
    log keeps its id)."""
    found: dict[str, Tenant] = {}
    for tenant_id in {t for t in tenant_ids if isinstance(t, str) and t}:
        with contextlib.suppress(NotFound):
            found[tenant_id] = store.get_tenant(tenant_id)
    return found


def _names(store: Store, tenant_ids: list[Any]) -> dict[str, str]:
    return {key: tenant.name for key, tenant in _tenants(store, tenant_ids).items()}


@router.get("/police/snapshot/{event_id}")
def police_snapshot(request: Request, event_id: str, user: PolicePage, store: StoreDep,
                    state: StateDep, purpose: str = "") -> Response:  # fmt: skip
    try:  # a purpose is optional here, but when given it must say something
        case = clean_purpose(purpose) if purpose else None
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    return snapshot_response(request, user, store, state, event_id, case)


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
        query = _page_query(form, state, limit=EXPORT_PAGE)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    first = store.query_events(query)  # a store error too answers before the download starts
    start = _audit(store, user, request, "export.started", case, filter_params(query), 0)
    lang = language(request)
    row = partial(_export_row, zone=state.gateway.zone, doors=state.gateway.doors, lang=lang)

    def pages() -> Iterator[list[list[object]]]:
        page = first
        while True:
            holders = _tenants(store, [entry.body.get("tenant_id") for entry in page.entries])
            yield [row(entry.body, holders) for entry in page.entries]
            if page.next_cursor is None:
                return
            page = store.query_events(replace(query, cursor=page.next_cursor))

    def ended(rows: int, finished: bool) -> None:
        _audit(store, user, request, "export.finished" if finished else "export.cut", None,
               {"start": start}, rows)  # fmt: skip

    header = [word(f"export.{column}", lang) for column in EXPORT_COLUMNS]
    return CsvDownload(header, pages(), filename="entries.csv", on_end=ended)


# What an exported entry says, in the page's words: the time in the building's zone, the door
# by its label, the result and reason in words, whose card (name, ID number masked); then what
# ties the row to the city's copy of the event (its id, seq and the snapshot's sha256).
EXPORT_COLUMNS = ("ts", "door", "result", "reason", "room", "name", "id_number", "card",
                  "snapshot_sha256", "event_id", "seq")  # fmt: skip


def _export_row(body: dict[str, Any], holders: Mapping[str, Tenant], *, zone: tzinfo,
                doors: Mapping[str, str | None], lang: Lang) -> list[object]:  # fmt: skip
    snapshot = body.get("snapshot") or {}
    holder = holders.get(body.get("tenant_id") or "")
    granted = body["type"] == "access.granted"
    return [shown(body["ts"], zone), door_label(body.get("door"), doors, lang),
            word("dash.granted" if granted else "dash.denied", lang),
            word(f"reason.{body.get('reason')}", lang), body.get("room", ""),
            holder.name if holder else "", holder.id_number_masked if holder else "",
            body.get("credential", {}).get("number", ""), snapshot.get("sha256", ""),
            body["event_id"], body["seq"]]  # fmt: skip


@router.post("/police/hold/{event_id}")
def hold_snapshot(request: Request, event_id: str, user: PolicePage, store: StoreDep,
                  csrf_token: CsrfField,
                  purpose: Annotated[str, Form()] = "",
                  back: Annotated[str, Form(max_length=4096)] = "",
                  ) -> Response:  # fmt: skip
    """Keep an entry's snapshot past retention for a case (audited); back to the same search."""
    check_csrf(user, csrf_token)
    try:
        case = clean_purpose(purpose)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    entry_with_snapshot(store, event_id)
    store.hold_snapshot(event_id, case, user.username)
    _audit(store, user, request, "snapshot.hold", case, {"event_id": event_id}, 1)
    return RedirectResponse(_back_to(back, purpose=case, held=event_id), status_code=303)


@router.post("/police/reveal/{tenant_id}", response_class=HTMLResponse)
def reveal(request: Request, tenant_id: str, user: PolicePage, store: StoreDep,
           csrf_token: CsrfField,
           purpose: Annotated[str, Form()] = "",
           back: Annotated[str, Form(max_length=4096)] = "") -> Response:  # fmt: skip
    """The full ID number of one tenant: a separate action, audited before it is shown."""
    check_csrf(user, csrf_token)
    try:
        case = clean_purpose(purpose)
    except ValidationError as exc:
        return render(request, "error.html", user, status=422, error_text=_refusal(request, exc))
    tenant = store.get_tenant(tenant_id)
    _audit(store, user, request, "id_number.reveal", case, {"tenant_id": tenant_id}, 1)
    return render(request, "reveal.html", user, tenant=tenant,
                  id_number=store.reveal_id_number(tenant_id), purpose=case,
                  back=_back_to(back, purpose=case))  # fmt: skip


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
    found, lang = health.get("findings", {}), language(request)
    return render(request, "installer.html", user, health=health, queue_depth=queue_depth,
                  disk_free_mb=health.get("disk_free_mb"),
                  problems=[said(item, lang) for item in found.get("problems", [])],
                  warnings=[said(item, lang) for item in found.get("warnings", [])])  # fmt: skip
