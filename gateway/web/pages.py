"""Server-rendered pages: shared plumbing, login, logout, first-use setup, language.

Pages use the API's session cookie and roles. Forms carry the session's CSRF token in a
hidden `csrf_token` field (a form cannot send a header); a page asked for without a session
redirects to the login page. No inline script or style anywhere: the CSP forbids them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.clock import shown
from gateway.store import Conflict, Role, ValidationError
from gateway.store.users import check_username
from gateway.web.deps import (
    GUARD,
    BuildingHead,
    StateDep,
    StoreDep,
    WebState,
    change_password,
    web_state,
)
from gateway.web.i18n import LANGS, door_label, explain, word
from web_security import passwords
from web_security.login import LoginRefused, check_password, end_session, log_in
from web_security.roles import CsrfField, check_csrf
from web_security.sessions import Session, SessionsFull
from web_security.words import language

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# The stylesheet goes inside every page: on a phone's 3G a separate file costs a round trip
# (about 0.56 s) before anything is drawn. The strict CSP allows exactly this text, by hash
# (app.py).
STYLESHEET = (HERE / "static" / "app.css").read_text(encoding="utf-8")
router = APIRouter(include_in_schema=False)

HOME: dict[Role, str] = {"building_head": "/", "police": "/police", "installer": "/installer"}


def building_now(state: WebState) -> datetime:
    """Now in the building's time zone (the gateway's `[gateway] timezone`)."""
    return datetime.now(state.gateway.zone)


PageUser = Annotated[Session[Role], Depends(GUARD.page_session)]
HeadPage = Annotated[Session[Role], Depends(GUARD.page_role("building_head"))]
PolicePage = Annotated[Session[Role], Depends(GUARD.page_role("police"))]
InstallerPage = Annotated[Session[Role], Depends(GUARD.page_role("installer"))]


def render(request: Request, name: str, session: Session[Role] | None, status: int = 200,
           **context: Any) -> HTMLResponse:  # fmt: skip
    """A template with the language, the words, the user and the CSRF token."""
    lang = language(request)
    gateway = web_state(request).gateway
    zone = gateway.zone
    return templates.TemplateResponse(request, name, {
        "lang": lang, "other_lang": "en" if lang == "zh" else "zh",
        "t": lambda key: word(key, lang), "user": session,
        "when": lambda moment: shown(moment, zone),
        "explain": lambda item, field=None: explain(item, lang, field),
        "door": lambda name: door_label(name, gateway.doors, lang),
        "csrf": session.csrf_token if session else "", "stylesheet": STYLESHEET, **context,
    }, status_code=status)  # fmt: skip


# --------------------------------------------------------------------------- routes


@router.get("/login")
def login_page(request: Request, state: StateDep) -> HTMLResponse:
    return render(request, "login.html", None, setup=state.setup_code.active)


@router.post("/login")
def login_form(
    request: Request,
    state: StateDep,
    store: StoreDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> Response:
    response = RedirectResponse("/", status_code=303)
    try:
        session = log_in(request, response, state, store.verify_user, username, password,
                         one_time_ok=True)  # fmt: skip
    except LoginRefused as refused:
        page = render(request, "login.html", None, status=refused.status, error=refused.key,
                      setup=state.setup_code.active)  # fmt: skip
        if refused.headers:
            page.headers.update(refused.headers)
        return page
    response.headers["location"] = "/password" if session.must_change else HOME[session.role]
    return response


@router.post("/logout")
def logout_form(request: Request, state: StateDep, session: PageUser,
                csrf_token: CsrfField) -> Response:  # fmt: skip
    check_csrf(session, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    end_session(request, response, state)
    return response


@router.get("/password")
def password_page(request: Request, session: PageUser) -> Response:
    return render(request, "password.html", session)


@router.post("/password")
def change_password_form(
    request: Request,
    state: StateDep,
    store: StoreDep,
    session: PageUser,
    csrf_token: CsrfField,
    current: Annotated[str, Form(max_length=256)],
    new: Annotated[str, Form(max_length=256)],
    repeat: Annotated[str, Form(max_length=256)],
) -> Response:
    """Every session of the user ends, this one too; the user goes on in a fresh one."""
    check_csrf(session, csrf_token)
    if new != repeat:
        return render(request, "password.html", session, status=422, error="password.differ")
    response = RedirectResponse(HOME[session.role], status_code=303)
    try:  # the current password counts towards the lockout, as a login does
        check_password(state, store.verify_user, session.username, current)
        change_password(request, response, state, store, session.username, new)
    except LoginRefused as refused:
        return render(request, "password.html", session, status=refused.status, error=refused.key)
    except passwords.HashingBusy:
        return render(request, "password.html", session, status=503, error="login.busy")
    except ValidationError as exc:
        return render(request, "password.html", session, status=422, error_text=exc)
    except SessionsFull:  # the password is changed; the new session must wait for a place
        return RedirectResponse("/login", status_code=303)
    return response


@router.get("/setup")
def setup_page(request: Request, state: StateDep) -> Response:
    if not state.setup_code.active:
        return RedirectResponse("/login", status_code=303)
    return render(request, "setup.html", None)


@router.post("/setup")
def setup_form(
    request: Request,
    state: StateDep,
    store: StoreDep,
    code: Annotated[str, Form(max_length=32)],
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> Response:
    try:  # checked before the code is spent, so a weak password does not burn it
        check_username(username)
        passwords.check_policy(password, username)
    except ValidationError as exc:
        return render(request, "setup.html", None, status=422, error_text=exc)
    except passwords.WeakPasswordError as exc:
        refused = ValidationError("password", str(exc), code=exc.code, params=exc.params)
        return render(request, "setup.html", None, status=422, error_text=refused)
    if store.has_users() or not state.setup_code.use(code):
        return render(request, "setup.html", None, status=403, error="setup.bad_code")
    try:
        store.add_user(username, "building_head", password)
    except Conflict as exc:
        return render(request, "setup.html", None, status=409, error_text=exc)
    except passwords.HashingBusy:  # no account made: the code must still work
        state.setup_code.put_back(code)
        return render(request, "setup.html", None, status=503, error="login.busy")
    return RedirectResponse("/login", status_code=303)


@router.get("/auth/upload", status_code=204)
def may_upload(_user: BuildingHead) -> Response:
    """Whether the caller may send an upload: nginx asks (auth_request, gateway/web/edge.py)
    before it reads the body. 204 for a building head's live session, 401 without one, 403
    for another role or a one-time password not yet changed (the API's answers: nginx reads
    only the status)."""
    return Response(status_code=204)


@router.get("/lang/{lang}")
def switch_language(lang: str, back: str = "/") -> Response:
    target = back if back.startswith("/") and not back.startswith("//") else "/"
    response = RedirectResponse(quote(target, safe="/?=&"), status_code=303)
    if lang in LANGS:
        response.set_cookie("lang", lang, samesite="strict", max_age=365 * 86400, path="/")
    return response
