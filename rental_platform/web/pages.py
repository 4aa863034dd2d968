"""Server-rendered pages: shared plumbing, login, logout, a new password, the language.

Pages use the API's session cookie and roles. Forms carry the session's CSRF token in a
hidden `csrf_token` field (a form cannot send a header); a page asked for without a session
redirects to the login page. No inline script or style but the stylesheet named by its hash:
the CSP forbids the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from web_security import passwords
from web_security.login import LoginRefused, check_password, end_session, log_in
from web_security.roles import CsrfField, check_csrf
from web_security.sessions import Session, SessionsFull
from web_security.words import LANGS, language

from ..search.export import REASON_WORDS
from ..store.users import Account, Role
from .clock import shown, shown_epoch
from .deps import PageUser, StateDep, web_state
from .i18n import WORDS, weak_password, word

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Inside every page: on a phone's 3G a separate file costs a round trip before anything is
# drawn. The strict CSP allows exactly this text, by its hash (app.py).
STYLESHEET = (HERE / "static" / "app.css").read_text(encoding="utf-8")
router = APIRouter(include_in_schema=False)

HOME: dict[Role, str] = {"police": "/police", "district": "/fleet"}


def render(
    request: Request, name: str, session: Session[Role] | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A template with the language, the words, the user, the CSRF token and the clock."""
    lang = language(request)
    zone = web_state(request).zone
    return templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "t": lambda key: word(key, lang),
            "user": session,
            "shown": shown,
            "shown_epoch": lambda epoch, offset=None: shown_epoch(epoch, offset, zone),
            "reason": lambda code: REASON_WORDS.get(code, code) if lang == "zh" else code,
            "door": lambda name: (
                word(f"door.{name}", lang) if f"door.{name}" in WORDS else name or ""
            ),
            "csrf": session.csrf_token if session else "",
            "stylesheet": STYLESHEET,
            **context,
        },
        status_code=status,
    )


def error_page(
    request: Request, session: Session[Role] | None, status: int, key: str, **params: object
) -> HTMLResponse:
    """The error page: `key` in the page's words, with `params`."""
    text = word(key, language(request)).format(**params)
    return render(request, "error.html", session, status=status, error_text=text)


@router.get("/")
def home(request: Request, state: StateDep) -> Response:
    """Each role's first page; the login page without a session."""
    found = state.sessions.get(request.cookies.get("session"))
    target = "/login" if found is None else HOME[found.role]
    return RedirectResponse(target, status_code=303)


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None)


@router.post("/login")
def login_form(
    request: Request,
    state: StateDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> Response:
    response = RedirectResponse("/", status_code=303)
    try:
        session = log_in(
            request, response, state, state.verify, username, password, one_time_ok=True
        )
    except LoginRefused as refused:
        page = render(
            request, "login.html", None, status=refused.status, error=refused.key, username=username
        )
        if refused.headers:
            page.headers.update(refused.headers)
        return page
    response.headers["location"] = "/password" if session.must_change else HOME[session.role]
    return response


@router.post("/logout")
def logout_form(
    request: Request, state: StateDep, session: PageUser, csrf_token: CsrfField
) -> Response:
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
    session: PageUser,
    csrf_token: CsrfField,
    current: Annotated[str, Form(max_length=256)],
    new: Annotated[str, Form(max_length=256)],
    repeat: Annotated[str, Form(max_length=256)],
) -> Response:
    """Every session of the user ends, this one too; the user goes on in a fresh one."""
    check_csrf(session, csrf_token)
    lang = language(request)

    def again(status: int, key: str = "", text: str = "") -> Response:
        return render(request, "password.html", session, status=status, error=key, error_text=text)

    if new != repeat:
        return again(422, "password.differ")
    response = RedirectResponse(HOME[session.role], status_code=303)
    try:  # the current password counts towards the lockout, as a login does
        checked = check_password(state, state.verify, session.username, current)
        state.change_password(
            request, response, Account(checked.username, checked.role, checked.must_change), new
        )
    except LoginRefused as refused:
        return again(refused.status, refused.key)
    except passwords.HashingBusy:
        return again(503, "login.busy")
    except passwords.WeakPasswordError as weak:
        said = weak_password(weak.code, weak.params, lang)
        return again(
            422,
            text=f"{word('password.new', lang)}：{said}"
            if lang == "zh"
            else f"{word('password.new', lang)}: {said}",
        )
    except SessionsFull:  # the password is changed; the new session must wait for a place
        return RedirectResponse("/login", status_code=303)
    return response


@router.get("/lang/{lang}")
def switch_language(lang: str, back: str = "/") -> Response:
    target = back if back.startswith("/") and not back.startswith("//") else "/"
    response = RedirectResponse(quote(target, safe="/?=&"), status_code=303)
    if lang in LANGS:
        response.set_cookie("lang", lang, samesite="strict", max_age=365 * 86400, path="/")
    return response
