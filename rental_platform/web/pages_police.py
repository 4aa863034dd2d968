"""The police pages: search entries across the city, their pictures, the CSV export, the audit.

The search form posts (with the session's CSRF token), so an ID number searched never sits in
an address, where a load balancer's access log would keep it. Every action on the results
(the next page, the export) is a form carrying the whole search on; a picture opens by a link
with the purpose alone. Times typed without an offset are the city's; every time shown is the
event's own, in its building's offset. Each search, picture and export is audited before it
is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from web_security.csvstream import CsvDownload
from web_security.roles import check_csrf
from web_security.sessions import Session
from web_security.words import language

from ..search import (
    CSV_HEADER,
    EntryFilter,
    FilterError,
    csv_row,
    export_pages,
    parse_entry_filter,
    search_entries,
)
from ..store.users import Role
from .deps import PolicePage, StateDep, WebState
from .i18n import refused
from .pages import error_page, render

router = APIRouter(include_in_schema=False)
PAGE = 50  # entries on a page of results
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?")
_TEXT = Field(default="", max_length=256)


class SearchForm(BaseModel):
    """The search form as typed: every field kept, to show it again on any answer."""

    model_config = ConfigDict(extra="forbid")
    csrf_token: str = Field(max_length=128)
    purpose: str = _TEXT
    street: str = _TEXT
    community: str = _TEXT
    building: str = _TEXT
    gateway_id: str = _TEXT
    card: str = _TEXT
    id_number: str = _TEXT
    room: str = _TEXT
    since: str = _TEXT
    until: str = _TEXT
    result: str = _TEXT
    cursor: str = Field(default="", max_length=512)

    def fields(self) -> dict[str, str]:
        """The search's own fields (not the token, not the page's position)."""
        return self.model_dump(exclude={"csrf_token", "cursor"})


Search = Annotated[SearchForm, Form()]


def _search(form: dict[str, str], state: WebState, *, limit: int) -> EntryFilter:
    """The checked search of the page's form (FilterError): a time without an offset, as a
    phone's date picker gives it, is the city's."""
    given = {key: value for key, value in form.items() if value.strip()}
    for key in ("since", "until"):
        if key in given and _LOCAL_TIME.fullmatch(given[key].strip()):
            local = datetime.fromisoformat(given[key].strip()).replace(tzinfo=state.zone)
            given[key] = local.isoformat()
    given["limit"] = str(limit)
    return parse_entry_filter(given, state.primary.sealer)


@router.get("/police")
def police_page(request: Request, user: PolicePage) -> Response:
    """The empty search form."""
    empty = SearchForm(csrf_token="").fields()
    return render(request, "police.html", user, form=empty, searched=False)


@router.post("/police")
def police_search(request: Request, user: PolicePage, state: StateDep, typed: Search) -> Response:
    """A search (or its next page), audited; a refused filter brings the form back as typed."""
    check_csrf(user, typed.csrf_token)
    form = typed.fields()
    try:
        entry_filter = _search({**form, "cursor": typed.cursor}, state, limit=PAGE)
        page = state.reads.run(lambda store: search_entries(store, entry_filter))
        state.record(
            request,
            user,
            "entries.query",
            entry_filter.purpose,
            entry_filter.audit_params(),
            len(page.entries),
        )
    except FilterError as exc:
        return _refused(request, user, form, exc)
    return render(
        request,
        "police.html",
        user,
        form=form,
        searched=True,
        entries=page.entries,
        next_cursor=page.next_cursor,
        paged=bool(typed.cursor),
    )


def _refused(
    request: Request, user: Session[Role], form: dict[str, str], exc: FilterError
) -> Response:
    said = refused(exc.field, exc.code, exc.message, language(request))
    return render(
        request,
        "police.html",
        user,
        status=422,
        form=form,
        searched=False,
        error=said,
        error_field=exc.field,
    )


@router.get("/police/snapshot/{event_id}")
def police_snapshot(
    request: Request, event_id: str, user: PolicePage, state: StateDep, purpose: str = ""
) -> Response:
    """An entry's picture, audited with the search's purpose."""
    try:
        picture = state.picture(request, user, event_id, purpose)
    except FilterError as exc:
        said = refused(exc.field, exc.code, exc.message, language(request))
        return render(request, "error.html", user, status=422, error_text=said)
    if picture is None:
        return error_page(request, user, 404, "police.no_picture")
    return Response(picture.jpeg, media_type="image/jpeg")


@router.post("/police/export.csv")
def police_export(request: Request, user: PolicePage, state: StateDep, typed: Search) -> Response:
    """The whole selection as CSV for Excel, streamed a page at a time on a connection of its
    own. Audited before the first row leaves (`export.started`) and again when the download
    ends (`export.finished`, or `export.cut` when the client went away), with the rows sent."""
    check_csrf(user, typed.csrf_token)
    form = typed.fields()
    try:
        entry_filter = _search(form, state, limit=1)
        state.reads.run(lambda store: search_entries(store, entry_filter))  # refusals first
    except FilterError as exc:
        return _refused(request, user, form, exc)
    start = state.record(
        request, user, "export.started", entry_filter.purpose, entry_filter.audit_params(), 0
    ).seq
    store = state.reads.detached()

    def pages() -> Iterator[list[list[object]]]:
        for page in export_pages(store, entry_filter):
            yield [csv_row(entry) for entry in page.entries]

    def ended(rows: int, finished: bool) -> None:
        store.close()
        state.record(
            request,
            user,
            "export.finished" if finished else "export.cut",
            None,
            {"start": start},
            rows,
        )
        state.audit.anchor()

    return CsvDownload(CSV_HEADER, pages(), filename="entries.csv", on_end=ended)


@router.get("/police/audit")
def audit_page(request: Request, user: PolicePage, state: StateDep, before: str = "") -> Response:
    """The audit log, newest first, with the chain verified; reading it is audited too."""
    if before and not (before.isdigit() and len(before) < 19 and int(before) >= 1):
        return error_page(request, user, 422, "police.bad_before")
    start = int(before) if before else None
    rows = state.audit.run(lambda log: log.page(before=start, limit=100))
    check = state.audit.check()  # of the rows shown; this reading's row comes after them
    state.record(request, user, "audit.view", None, {"before": start}, len(rows))
    return render(
        request, "audit.html", user, rows=rows, check=check, anchored=state.audit.anchored
    )
