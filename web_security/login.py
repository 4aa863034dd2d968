"""Logging in and out: the password check under the lockout, the session cookie, its end.

An application hands these its state (`LoginState`: sessions, throttle, whether cookies are
Secure) and a way to check a password (`verify`: the account, or None). A refusal is
`LoginRefused`, carrying a code (`key`) the application says in its own words:

    try:
        session = log_in(request, response, state, store.verify_user, username, password,
                         one_time_ok=False)
    except LoginRefused as refused:
        raise HTTPException(refused.status, refused.detail, headers=refused.headers)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from fastapi import Request, Response

from web_security.passwords import HashingBusy
from web_security.sessions import PasswordChanged, R, Session, SessionsFull, SessionStore
from web_security.throttle import Throttle

COOKIE = "session"
CSRF_HEADER = "X-CSRF-Token"

R_co = TypeVar("R_co", bound=str, covariant=True)
# The codes a refused login carries; an application words each one.
LOGIN_REFUSAL_KEYS = ("login.locked", "login.busy", "login.failed", "login.one_time", "login.full")


class Account(Protocol[R_co]):
    """A user whose password checked out, as the login needs it."""

    @property
    def username(self) -> str: ...
    @property
    def role(self) -> R_co: ...
    @property
    def must_change(self) -> bool:
        """The password was a one-time one: a new one must be chosen before anything else."""
        ...


class LoginState(Protocol[R]):
    """What an application's shared web state holds for logins."""

    @property
    def sessions(self) -> SessionStore[R]: ...
    @property
    def throttle(self) -> Throttle: ...
    @property
    def secure_cookies(self) -> bool:
        """Set under TLS: the cookie gets `Secure`."""
        ...


Verify = Callable[[str, str], Account[R] | None]


class LoginRefused(Exception):
    """A password not accepted: `status` for the HTTP answer, `key` for the page's words,
    `detail` for the API's JSON, `retry_after` seconds (0: no Retry-After header)."""

    def __init__(self, status: int, key: str, detail: str, retry_after: int = 0) -> None:
        super().__init__(detail)
        self.status = status
        self.key = key
        self.detail = detail
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else None


def check_password(state: LoginState[R], verify: Verify[R], username: str,
                   password: str) -> Account[R]:  # fmt: skip
    """The account if `password` is theirs, else LoginRefused: locked out (SPEC 4: 429), wrong
    (401), or too many hashes under way (503). Every check counts towards the lockout, and is
    reserved before it starts, so parallel attempts check at most 5 passwords between them."""
    wait = state.throttle.reserve(username)
    if wait:
        raise LoginRefused(
            429, "login.locked", "too many failed logins for this user; try again later", wait
        )
    try:
        account = verify(username, password)
    except HashingBusy:
        state.throttle.release(username)
        raise LoginRefused(503, "login.busy", "busy checking other logins; try again in a"
                           " moment", 1) from None  # fmt: skip
    except BaseException:
        state.throttle.release(username)
        raise
    if account is None:
        state.throttle.failed(username)
        raise LoginRefused(401, "login.failed", "wrong username or password")
    state.throttle.succeeded(username)
    return account


def log_in(request: Request, response: Response, state: LoginState[R], verify: Verify[R],
           username: str, password: str, *, one_time_ok: bool) -> Session[R]:  # fmt: skip
    """Check the password and start a session, its cookie set on `response`; else
    LoginRefused. A one-time password is refused unless `one_time_ok` (the page then asks
    for a new one)."""
    generation = state.sessions.generation(username)
    account = check_password(state, verify, username, password)
    if account.must_change and not one_time_ok:
        raise LoginRefused(403, "login.one_time", "this is a one-time password: choose a new"
                           " one on the page (/password) first")  # fmt: skip
    try:
        return start_session(request, response, state, account, generation)
    except PasswordChanged:  # changed while we checked: the password given is the old one
        raise LoginRefused(401, "login.failed", "wrong username or password") from None
    except SessionsFull:
        raise LoginRefused(503, "login.full", "too many sessions are open; try again later",
                           60) from None  # fmt: skip


def restart_sessions(request: Request, response: Response, state: LoginState[R],
                     account: Account[R]) -> Session[R]:  # fmt: skip
    """After a password change: end every session of the account, the caller's too, and go on
    in a fresh one (new token and CSRF token) set on `response`.

    A stolen cookie, even a copy of the caller's own, is worthless afterwards. SessionsFull
    when there is no room for the new one (then the user logs in again).
    """
    state.sessions.revoke_user(account.username)
    return start_session(request, response, state, account)


def start_session(request: Request, response: Response, state: LoginState[R],
                  account: Account[R], generation: int | None = None) -> Session[R]:  # fmt: skip
    """A session for `account`, its cookie set on `response`; see SessionStore.create."""
    token, found = state.sessions.create(account.username, account.role, remote_address(request),
                                         must_change=account.must_change,
                                         generation=generation)  # fmt: skip
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=state.secure_cookies, path="/")  # fmt: skip
    return found


def end_session(request: Request, response: Response, state: LoginState[R]) -> None:
    """End the caller's session on the server and drop its cookie."""
    state.sessions.revoke(request.cookies.get(COOKIE))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=state.secure_cookies)  # fmt: skip


def remote_address(request: Request) -> str | None:
    return request.client.host if request.client else None
