"""The building head's pages: overview, tenants, cards, alarms, visitor codes, CSV in and out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from gateway.store import (
    CardStatus,
    Conflict,
    Role,
    Store,
    Tenant,
    TenantCreate,
    TenantStatus,
    TenantUpdate,
    ValidationError,
)
from gateway.store.validation import normalize_room, parse_card_number, refusal
from gateway.tenant_csv import (
    CHINESE_COLUMNS,
    COLUMNS,
    MAX_FILE_BYTES,
    WEB_BATCH_ROWS,
    CsvImportError,
    import_tenant_data,
)
from gateway.web.deps import StateDep, StoreDep, WebState, snapshot_response
from gateway.web.i18n import door_label, word
from gateway.web.pages import HeadPage, building_now, render
from web_security.csvstream import csv_chunks
from web_security.roles import CsrfField, check_csrf
from web_security.sessions import Session
from web_security.words import language

router = APIRouter(include_in_schema=False)
# The most a tenant form's field takes before FastAPI refuses it with an error page of its own;
# below this the store's checks refuse a value and the form comes back with everything typed.
FIELD_MAX = 256
ENROLL_WAIT_SECONDS = 25.0


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, user: HeadPage, store: StoreDep, state: StateDep) -> Response:
    health = state.gateway.health()
    now = building_now(state)
    registration = store.registration(now.date())
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return render(request, "dashboard.html", user, doors=health.get("doors", {}),
                  today=store.entries_since(midnight),
                  alarms=store.list_alarms(open_only=True, limit=20),
                  registration=registration)  # fmt: skip


# ------------------------------------------------------------------------------ tenants


@router.get("/tenants", response_class=HTMLResponse)
def tenants(request: Request, user: HeadPage, store: StoreDep, state: StateDep, q: str = "",
            room: str = "", status: str = "", page: int = 0) -> Response:  # fmt: skip
    chosen: TenantStatus | None = status if status in ("active", "suspended",  # type: ignore[assignment]
                                                        "moved_out") else None
    found = store.search_tenants(name=q[:64] or None, room=room[:32] or None, status=chosen,
                                 limit=51, offset=max(0, min(page, 10_000)) * 50)  # fmt: skip
    today = building_now(state).date()
    return render(request, "tenants.html", user, tenants=found[:50], more=len(found) > 50,
                  q=q, room=room, status_filter=status, page=page,
                  states={t.id: door_state(t, today) for t in found[:50]})  # fmt: skip


def door_state(tenant: Tenant, today: date) -> str:
    """Whether the tenant's cards open the door today, as the list shows it: the record's
    status, or why an active record still does not open (lease over or not begun, no card)."""
    if tenant.status != "active":
        return f"status.{tenant.status}"
    if tenant.valid_until < today:
        return "state.lease_ended"
    if tenant.valid_from > today:
        return "state.lease_not_started"
    if not any(card.status == "active" for card in tenant.cards):
        return "state.no_card"
    return "status.active"


@router.get("/tenants/new", response_class=HTMLResponse)
def new_tenant(request: Request, user: HeadPage, state: StateDep) -> Response:
    today = building_now(state).date()
    return render(request, "tenant_form.html", user, form={
        "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=365)).isoformat(),
    })  # fmt: skip


@router.post("/tenants/new", response_class=HTMLResponse)
def add_tenant(
    request: Request,
    user: HeadPage,
    store: StoreDep,
    csrf_token: CsrfField,
    name: Annotated[str, Form(max_length=FIELD_MAX)],
    id_number: Annotated[str, Form(max_length=FIELD_MAX)],
    phone: Annotated[str, Form(max_length=FIELD_MAX)],
    room: Annotated[str, Form(max_length=FIELD_MAX)],
    valid_from: Annotated[str, Form(max_length=FIELD_MAX)],
    valid_until: Annotated[str, Form(max_length=FIELD_MAX)],
    card: Annotated[str, Form(max_length=FIELD_MAX)] = "",
) -> Response:
    check_csrf(user, csrf_token)
    # A refused form comes back with everything typed (no password is typed here).
    form = {"name": name, "phone": phone, "id_number": id_number, "room": room,
            "valid_from": valid_from, "valid_until": valid_until, "card": card}  # fmt: skip
    try:
        tenant = store.add_tenant(TenantCreate(
            name=name.strip(), id_number=id_number, phone=phone, room=room.strip(),
            valid_from=_date(valid_from, "valid_from"),
            valid_until=_date(valid_until, "valid_until"),
            cards=(_card(card),) if card.strip() else (),
        ))  # fmt: skip
    except (ValidationError, Conflict) as exc:
        return render(request, "tenant_form.html", user, status=422, form=form, error=exc)
    return RedirectResponse(f"/tenants/{tenant.id}?saved=1", status_code=303)


@router.get("/tenants/{tenant_id}", response_class=HTMLResponse)
def tenant_page(request: Request, tenant_id: str, user: HeadPage, store: StoreDep,
                state: StateDep, saved: int = 0) -> Response:  # fmt: skip
    return _tenant_page(request, user, store, state, tenant_id, saved=bool(saved))


def _refused(request: Request, user: Session[Role], store: Store, state: WebState,
             tenant_id: str, exc: Exception, typed: dict[str, str]) -> Response:  # fmt: skip
    """The tenant's page again, saying why a form on it was refused and keeping what was typed.
    Not a redirect: a message never travels in the address, where a crafted link could put
    any text on the page."""
    return _tenant_page(request, user, store, state, tenant_id, error=exc, typed=typed)


def _tenant_page(request: Request, user: Session[Role], store: Store, state: WebState,
                 tenant_id: str, *, saved: bool = False, error: Exception | None = None,
                 typed: dict[str, str] | None = None) -> Response:  # fmt: skip
    tenant = store.get_tenant(tenant_id)
    return render(request, "tenant.html", user, status=200 if error is None else 422,
                  tenant=tenant, saved=saved, error=error, typed=typed or {},
                  extend_default=_a_year_on(tenant.valid_until),
                  enroll_after=state.unknown_cards.latest_seq())  # fmt: skip


def _a_year_on(day: date) -> date:
    """What a renewal usually asks for: the same day a year later (28 Feb for 29 Feb)."""
    leap_day = (day.month, day.day) == (2, 29)
    return day.replace(year=day.year + 1, day=28 if leap_day else day.day)


@router.post("/tenants/{tenant_id}", response_class=HTMLResponse)
def edit_tenant(
    request: Request,
    tenant_id: str,
    user: HeadPage,
    store: StoreDep,
    state: StateDep,
    csrf_token: CsrfField,
    name: Annotated[str, Form(max_length=FIELD_MAX)],
    room: Annotated[str, Form(max_length=FIELD_MAX)],
    valid_from: Annotated[str, Form(max_length=FIELD_MAX)],
    valid_until: Annotated[str, Form(max_length=FIELD_MAX)],
    phone: Annotated[str, Form(max_length=FIELD_MAX)] = "",
) -> Response:
    check_csrf(user, csrf_token)
    try:
        store.update_tenant(tenant_id, TenantUpdate(
            name=name.strip(), room=room.strip(), phone=phone or None,
            valid_from=_date(valid_from, "valid_from"),
            valid_until=_date(valid_until, "valid_until"),
        ))  # fmt: skip
    except (ValidationError, Conflict) as exc:
        typed = {"name": name, "room": room, "phone": phone, "valid_from": valid_from,
                 "valid_until": valid_until}  # fmt: skip
        return _refused(request, user, store, state, tenant_id, exc, typed)
    return _back(tenant_id)


@router.post("/tenants/{tenant_id}/status")
def tenant_status(request: Request, tenant_id: str, user: HeadPage, store: StoreDep,
                  csrf_token: CsrfField, status: Annotated[str, Form(max_length=16)],
                  confirmed: Annotated[str, Form(max_length=1)] = "") -> Response:  # fmt: skip
    """Suspend, reactivate, or move out; moving out only once the head confirmed it."""
    check_csrf(user, csrf_token)
    if status not in ("active", "suspended", "moved_out"):
        raise HTTPException(422, "unknown status")  # only a crafted request sends another
    tenant = store.get_tenant(tenant_id)
    if status == "moved_out" and confirmed != "1":
        lang = language(request)
        return render(request, "confirm.html", user, tenant=tenant,
                      action=f"/tenants/{tenant_id}/status", fields={"status": status},
                      question=word("confirm.move_out", lang) % (tenant.name, tenant.room),
                      consequence=word("confirm.move_out_means", lang),
                      yes=word("tenant.move_out", lang))  # fmt: skip
    store.set_tenant_status(tenant_id, status)  # type: ignore[arg-type]
    return _back(tenant_id)


@router.post("/tenants/{tenant_id}/extend")
def extend_lease(request: Request, tenant_id: str, user: HeadPage, store: StoreDep,
                 state: StateDep, csrf_token: CsrfField,
                 valid_until: Annotated[str, Form(max_length=FIELD_MAX)]) -> Response:  # fmt: skip
    """延期: the lease ends later (the only field the renewal changes)."""
    check_csrf(user, csrf_token)
    ends = store.get_tenant(tenant_id).valid_until
    try:
        until = _date(valid_until, "valid_until")
        if until <= ends:
            raise refusal("valid_until", "extend_not_later", typed=until, valid_until=ends)
        store.update_tenant(tenant_id, TenantUpdate(valid_until=until))
    except ValidationError as exc:
        return _refused(request, user, store, state, tenant_id, exc, {"extend": valid_until})
    return _back(tenant_id)


@router.post("/tenants/{tenant_id}/cards")
def add_card(request: Request, tenant_id: str, user: HeadPage, store: StoreDep,
             state: StateDep, csrf_token: CsrfField,
             number: Annotated[str, Form(max_length=FIELD_MAX)]) -> Response:  # fmt: skip
    check_csrf(user, csrf_token)
    try:
        store.add_card(tenant_id, _card(number))
    except (ValidationError, Conflict) as exc:
        return _refused(request, user, store, state, tenant_id, exc, {"number": number})
    return _back(tenant_id)


@router.post("/cards/{number}/lost")
def report_lost(request: Request, number: int, user: HeadPage, store: StoreDep,
                csrf_token: CsrfField,
                confirmed: Annotated[str, Form(max_length=1)] = "") -> Response:  # fmt: skip
    """挂失, once the head confirmed it: the card opens nothing and alarms when presented."""
    check_csrf(user, csrf_token)
    return _take_card(request, user, store, number, "lost", confirmed=confirmed == "1")


@router.post("/cards/{number}/cancel")
def cancel_card(request: Request, number: int, user: HeadPage, store: StoreDep,
                csrf_token: CsrfField,
                confirmed: Annotated[str, Form(max_length=1)] = "") -> Response:  # fmt: skip
    """注销, once the head confirmed it: the card is refused for good and alarms when presented."""
    check_csrf(user, csrf_token)
    return _take_card(request, user, store, number, "cancel", confirmed=confirmed == "1")


# Taking a card away: the states it may be taken from, the state it gets, the button's word.
_TAKE: dict[str, tuple[tuple[str, ...], CardStatus, str]] = {
    "lost": (("active",), "lost", "card.report_lost"),
    "cancel": (("active", "lost"), "cancelled", "card.cancel"),
}


def _take_card(request: Request, user: Session[Role], store: Store, number: int, action: str,
               *, confirmed: bool) -> Response:  # fmt: skip
    """Report a card lost or cancel it once the head confirmed; until then, the page asking
    whether to, saying what it means. A second tap (the card is taken already) changes nothing."""
    card = store.get_card(number)
    states, becomes, button = _TAKE[action]
    if card.status not in states:
        return _back(card.tenant_id)
    if confirmed:
        store.set_card_status(number, becomes)
        return _back(card.tenant_id)
    tenant = store.get_tenant(card.tenant_id)
    lang = language(request)
    return render(request, "confirm.html", user, tenant=tenant,
                  action=f"/cards/{number}/{action}", fields={},
                  question=word(f"confirm.{action}", lang) % (tenant.name, number),
                  consequence=word(f"confirm.{action}_means", lang),
                  yes=word(button, lang))  # fmt: skip


@router.post("/cards/{number}/found")
def reinstate(number: int, user: HeadPage, store: StoreDep, csrf_token: CsrfField) -> Response:
    """解挂: a lost card that was found opens the door again (one tap: it takes nothing away)."""
    check_csrf(user, csrf_token)
    card = store.get_card(number)
    if card.status != "lost":
        raise HTTPException(409, "only a lost card can be reinstated")
    store.set_card_status(number, "active")
    return _back(card.tenant_id)


@router.get("/cards/next-unknown")
async def next_unknown_card(request: Request, user: HeadPage, state: StateDep,
                            after: int = 0) -> JSONResponse:  # fmt: skip
    """Long poll: the next card a reader did not know, for enrolling it (25 s at most).

    Awaited on the event loop, not on a worker thread, and capped per session and in all
    (429 past that), so waiting pages never hold up logins or /healthz.
    """
    with state.long_polls.hold(user) as refused:
        if refused:
            return JSONResponse({"detail": word(refused, language(request))}, status_code=429,
                                headers={"Retry-After": str(int(ENROLL_WAIT_SECONDS))})
        found = await state.unknown_cards.wait_after(after, ENROLL_WAIT_SECONDS)
    if found is None:
        return JSONResponse({"number": None, "after": after})
    seq, number, door = found
    label = door_label(door, state.gateway.doors, language(request))
    return JSONResponse({"number": number, "door": door, "door_label": label, "after": seq})


# ---------------------------------------------------------------- alarms, visitors, CSV


@router.get("/alarms", response_class=HTMLResponse)
def alarms_page(request: Request, user: HeadPage, store: StoreDep) -> Response:
    return render(request, "alarms.html", user,
                  alarms=store.list_alarms(open_only=False, limit=100))  # fmt: skip


@router.get("/alarms/{alarm_id}/snapshot")
def alarm_snapshot(request: Request, alarm_id: int, user: HeadPage, store: StoreDep,
                   state: StateDep) -> Response:  # fmt: skip
    """The picture taken when the alarm's card was presented; audited, the alarm as purpose."""
    event_id = store.get_alarm(alarm_id).event_id
    if event_id is None:
        raise HTTPException(404, "this alarm has no entry")
    return snapshot_response(request, user, store, state, event_id, f"告警 {alarm_id}")


@router.post("/alarms/{alarm_id}/ack")
def acknowledge(alarm_id: int, user: HeadPage, store: StoreDep, csrf_token: CsrfField) -> Response:
    check_csrf(user, csrf_token)
    store.acknowledge_alarm(alarm_id, user.username)
    return RedirectResponse("/alarms", status_code=303)


@router.get("/visitors", response_class=HTMLResponse)
def visitors(request: Request, user: HeadPage, store: StoreDep) -> Response:
    return render(request, "visitors.html", user, codes=store.list_visitor_codes()[:50])


@router.post("/visitors", response_class=HTMLResponse)
def create_visitor(
    request: Request,
    user: HeadPage,
    store: StoreDep,
    state: StateDep,
    csrf_token: CsrfField,
    hours: Annotated[int, Form(ge=1, le=168)] = 4,
    uses: Annotated[int, Form(ge=1, le=20)] = 2,
    room: Annotated[str, Form(max_length=FIELD_MAX)] = "",
) -> Response:
    """A code for a visitor of one room: the room must be one of the building's."""
    check_csrf(user, csrf_token)
    typed = {"room": room, "hours": str(hours), "uses": str(uses)}
    try:
        visited = normalize_room(room, "visited")
        if not store.has_room(visited):
            raise refusal("visited", "no_such_room", room=visited)
    except ValidationError as exc:
        return render(request, "visitors.html", user, status=422, error=exc, typed=typed,
                      codes=store.list_visitor_codes()[:50])  # fmt: skip
    issued = store.create_visitor_code(
        door=None, valid_until=building_now(state) + timedelta(hours=hours),
        max_uses=uses, created_by=user.username, room=visited,
    )  # fmt: skip
    return render(request, "visitors.html", user, codes=store.list_visitor_codes()[:50],
                  issued=issued)  # fmt: skip


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, user: HeadPage) -> Response:
    return _import_page(request, user)


def _import_page(request: Request, user: Session[Role], status: int = 200,
                 **context: object) -> Response:  # fmt: skip
    """The import page: the form, the columns it reads and how to write them."""
    columns = list(zip(COLUMNS, CHINESE_COLUMNS, strict=True))
    return render(request, "import.html", user, status=status, columns=columns, **context)


@router.get("/import/template.csv")
def import_template(user: HeadPage) -> Response:
    """The header row to fill in, in GB18030: Excel on Chinese Windows opens it as it is
    (a UTF-8 file without a BOM shows there as garbled characters)."""
    text = ",".join(CHINESE_COLUMNS) + "\r\n"
    return Response(text.encode("gb18030"), media_type="text/csv; charset=gb18030",
                    headers={"Content-Disposition": "attachment; filename=\"tenants.csv\";"
                             " filename*=UTF-8''%E4%BD%8F%E6%88%B7.csv"})  # fmt: skip


@router.post("/import", response_class=HTMLResponse)
def import_csv(request: Request, user: HeadPage, store: StoreDep, csrf_token: CsrfField,
               file: Annotated[UploadFile, File()]) -> Response:  # fmt: skip
    # A plain def: FastAPI runs it on a worker thread, and an import takes a while.
    check_csrf(user, csrf_token)
    data = file.file.read(MAX_FILE_BYTES + 1)
    try:
        result = import_tenant_data(store, data, batch=WEB_BATCH_ROWS)
    except CsvImportError as exc:
        return _import_page(request, user, status=422, errors=exc.errors[:500],
                      error_count=len(exc.errors))  # fmt: skip
    return _import_page(request, user, result=result)


@router.get("/tenants.csv")
def export_tenants(user: HeadPage, store: StoreDep) -> StreamingResponse:
    """Every tenant, masked, streamed a page at a time (memory stays flat)."""
    return StreamingResponse(csv_chunks(TENANT_HEADER, _tenant_rows(store)),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="tenants.csv"'})


# The import's own Chinese header (SPEC 5), so a head can fill the template from an export;
# the ID numbers in an export are masked and must be typed in again.
TENANT_HEADER = (*CHINESE_COLUMNS, "状态")


def _tenant_rows(store: Store) -> Iterator[list[list[object]]]:
    offset = 0
    while page := store.search_tenants(limit=500, offset=offset):
        yield [[t.room, t.name, t.id_number_masked, t.phone_masked,
                ";".join(str(c.number) for c in t.cards if c.status == "active"),
                t.valid_from.isoformat(), t.valid_until.isoformat(),
                word(f"status.{t.status}", "zh")] for t in page]
        offset += len(page)


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise refusal(field, "date_shape", typed=repr(value[:20])) from None


def _card(value: str) -> int:
    return parse_card_number(value, "card")  # 0-9 only: isdigit() took "²", then int() failed


def _back(tenant_id: str) -> RedirectResponse:
    """After a change that was saved: the tenant's page, saying so."""
    return RedirectResponse(f"/tenants/{tenant_id}?saved=1", status_code=303)
