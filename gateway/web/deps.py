"""What every route needs: the running gateway, the session, the role, the CSRF check.

Roles are dependencies, never `if`s in a route body:

    @router.get("/tenants")
    def list_tenants(user: BuildingHead, store: StoreDep) -> list[TenantOut]: ...

A route without a login dependency is public (`/healthz`, `/metrics`, `POST /login`);
`tests/web/test_routes.py` checks every route against the table of who may call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, Response

from gateway import passwords
from gateway.camera.snapshots import SnapshotStore
from gateway.store import SNAPSHOT_TYPES, JournalEntry, Role, Store, User
from gateway.web.sessions import (
    LoginThrottle,
    PasswordChanged,
    Session,
    Sessions,
    SessionsFull,
    SetupCode,
)

COOKIE = "session"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Enrollment long polls: a building head has one tenant page open, maybe two; each poll holds
# a connection (not a thread) for up to 25 s.
MAX_POLLS_PER_SESSION = 2
MAX_POLLS = 8


class WebGateway(Protocol):
    """The running gateway as the web layer sees it."""

    store: Store | None
    snapshots: SnapshotStore

    @property
    def zone(self) -> tzinfo:
        """The building's time zone: every time the page shows or reads is in it."""
        ...

    @property
    def doors(self) -> Mapping[str, str | None]:
        """The building's doors in the config's order: name -> the label it gives, if any."""
        ...

    def health(self) -> dict[str, Any]: ...


class UnknownCards:
    """Cards the readers did not know, newest last: what "present the new card" waits for.

    Fed from the gateway's threads (`on_event`), waited for on the web's event loop
    (`wait_after`, awaited: a waiting page holds no worker thread).
    """

    def __init__(self) -> None:
        self._seen: deque[tuple[int, int, str]] = deque(maxlen=32)  # (seq, number, door)
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def on_event(self, entry: JournalEntry) -> None:
        body = entry.body
        if body.get("type") == "access.denied" and body.get("reason") == "unknown_card":
            number = body.get("credential", {}).get("number")
            if isinstance(number, int):
                with self._lock:
                    self._seen.append((entry.seq, number, str(body.get("door", ""))))
                    waiters, self._waiters = self._waiters, set()
                for loop, wake in waiters:
                    # RuntimeError: that loop has closed, so nobody waits on it any more.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(wake.set)

    def latest_seq(self) -> int:
        with self._lock:
            return self._seen[-1][0] if self._seen else 0

    async def wait_after(self, seq: int, timeout: float) -> tuple[int, int, str] | None:
        """The first card seen after `seq`, waiting up to `timeout` seconds for one."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            found = self._first_after(seq)
            if found is not None:
                return found
            self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[1].wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        with self._lock:
            return self._first_after(seq)

    def _first_after(self, seq: int) -> tuple[int, int, str] | None:
        return next((item for item in self._seen if item[0] > seq), None)


class LongPolls:
    """Long polls open now, at most `per_session` for one session and `total` in all."""

    def __init__(self, per_session: int = MAX_POLLS_PER_SESSION, total: int = MAX_POLLS) -> None:
        self.per_session = per_session
        self.total = total
        self._open: dict[str, int] = {}  # session (its CSRF token, unique to it): open polls
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, session: Session) -> Iterator[str | None]:
        """None while holding a place; else why there is none (an i18n key) and nothing held.

            with state.long_polls.hold(user) as refused:
                if refused: return 429
        """
        key = session.csrf_token
        with self._lock:
            if self._open.get(key, 0) >= self.per_session:
                refused: str | None = "card.polls_session"
            elif sum(self._open.values()) >= self.total:
                refused = "card.polls_total"
            else:
                refused = None
                self._open[key] = self._open.get(key, 0) + 1
        try:
            yield refused
        finally:
            if refused is None:
                with self._lock:
                    if self._open[key] > 1:
                        self._open[key] -= 1
                    else:
                        del self._open[key]


@dataclass(slots=True)
class WebState:
    """Shared by every request: the gateway, its sessions, the login throttle."""

    gateway: WebGateway
    sessions: Sessions
    throttle: LoginThrottle
    secure_cookies: bool  # set under TLS
    setup_code: SetupCode = field(default_factory=SetupCode)
    unknown_cards: UnknownCards = field(default_factory=UnknownCards)
    long_polls: LongPolls = field(default_factory=LongPolls)


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def store(state: Annotated[WebState, Depends(web_state)]) -> Store:
    """The gateway's store; 503 while the gateway is still starting or already stopping."""
    opened = state.gateway.store
    if opened is None:
        raise HTTPException(503, "the gateway is starting; try again in a moment")
    return opened


def entry_with_snapshot(store: Store, event_id: str) -> JournalEntry:
    """The journaled entry `event_id` if it has a snapshot; 404 otherwise."""
    entry = store.find_event(event_id) if len(event_id) == 36 else None
    if entry is None or entry.body["type"] not in SNAPSHOT_TYPES or not entry.body.get("snapshot"):
        raise HTTPException(404, "no snapshot for this entry")
    return entry


def snapshot_response(request: Request, user: Session, store: Store, state: WebState,
                      event_id: str, purpose: str | None) -> Response:  # fmt: skip
    """The entry's JPEG, checked against the sha256 its event recorded; audited first, with
    `purpose`, whether or not the picture is still there. 404 for an entry without one."""
    entry = entry_with_snapshot(store, event_id)
    data = state.gateway.snapshots.read(entry.event_id, datetime.fromisoformat(entry.body["ts"]))
    store.audit(username=user.username, role=user.role, remote=remote_address(request),
                action="snapshot.view", purpose=purpose, params={"event_id": event_id},
                records=1 if data else 0)  # fmt: skip
    if data is None:
        raise HTTPException(404, "the snapshot is no longer kept")
    if hashlib.sha256(data).hexdigest() != entry.body["snapshot"]["sha256"]:
        raise HTTPException(409, "the snapshot file does not match its event's sha256")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


class LoginRefused(Exception):
    """A password not accepted: `status` for the HTTP answer, `key` for the page's words (i18n),
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


def check_password(state: WebState, store: Store, username: str, password: str) -> User:
    """The user if `password` is theirs, else LoginRefused: locked out (SPEC 4: 429), wrong
    (401), or too many hashes under way (503). Every check counts towards the lockout, and is
    reserved before it starts, so parallel attempts check at most 5 passwords between them."""
    wait = state.throttle.reserve(username)
    if wait:
        raise LoginRefused(429, "login.locked",
                           "too many failed logins for this user; try again later", wait)
    try:
        user = store.verify_user(username, password)
    except passwords.HashingBusy:
        state.throttle.release(username)
        raise LoginRefused(503, "login.busy", "busy checking other logins; try again in a"
                           " moment", 1) from None  # fmt: skip
    except BaseException:
        state.throttle.release(username)
        raise
    if user is None:
        state.throttle.failed(username)
        raise LoginRefused(401, "login.failed", "wrong username or password")
    state.throttle.succeeded(username)
    return user


def log_in(request: Request, response: Response, state: WebState, store: Store, username: str,
           password: str, *, one_time_ok: bool) -> Session:  # fmt: skip
    """Check the password and start a session, its cookie set on `response`; else
    LoginRefused. A one-time password is refused unless `one_time_ok` (the page then asks
    for a new one)."""
    generation = state.sessions.generation(username)
    user = check_password(state, store, username, password)
    if user.must_change and not one_time_ok:
        raise LoginRefused(403, "login.one_time", "this is a one-time password: choose a new"
                           " one on the page (/password) first")  # fmt: skip
    try:
        return start_session(request, response, state, user, generation)
    except PasswordChanged:  # changed while we checked: the password given is the old one
        raise LoginRefused(401, "login.failed", "wrong username or password") from None
    except SessionsFull:
        raise LoginRefused(503, "login.full", "too many sessions are open; try again later",
                           60) from None  # fmt: skip


def change_password(request: Request, response: Response, state: WebState, store: Store,
                    username: str, new: str) -> Session:  # fmt: skip
    """Replace the user's password and end every session of theirs, the caller's too; the
    caller goes on in a fresh session (new token and CSRF token) set on `response`.

    A stolen cookie, even a copy of the caller's own, is worthless afterwards. ValidationError
    for a weak password, HashingBusy, SessionsFull (then the user logs in again).
    """
    store.set_password(username, new)
    state.sessions.revoke_user(username)
    return start_session(request, response, state, store.get_user(username))


def start_session(request: Request, response: Response, state: WebState, user: User,
                  generation: int | None = None) -> Session:  # fmt: skip
    """A session for `user`, its cookie set on `response`; see Sessions.create."""
    token, found = state.sessions.create(user.username, user.role, remote_address(request),
                                         must_change=user.must_change,
                                         generation=generation)  # fmt: skip
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=state.secure_cookies, path="/")  # fmt: skip
    return found


def end_session(request: Request, response: Response, state: WebState) -> None:
    """End the caller's session on the server and drop its cookie."""
    state.sessions.revoke(request.cookies.get(COOKIE))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=state.secure_cookies)  # fmt: skip


def remote_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def session(request: Request, state: Annotated[WebState, Depends(web_state)]) -> Session:
    """The caller's live session (401 without one), CSRF checked on state-changing requests."""
    found = state.sessions.get(request.cookies.get(COOKIE))
    if found is None:
        raise HTTPException(401, "not logged in, or the session ended",
                            headers={"WWW-Authenticate": "Cookie"})  # fmt: skip
    if request.method in _UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return found


def require(*roles: Role) -> Callable[..., Session]:
    """A dependency that lets only these roles through (403 for the others)."""

    def check(current: Annotated[Session, Depends(session)]) -> Session:
        if current.role not in roles:
            raise HTTPException(403, "this page is not for your role")
        if current.must_change:  # a page login with a one-time password: /password first
            raise HTTPException(403, "choose a new password first (/password)")
        return current

    check.__name__ = f"require_{'_or_'.join(roles)}"
    return check


StateDep = Annotated[WebState, Depends(web_state)]
StoreDep = Annotated[Store, Depends(store)]
AnyUser = Annotated[Session, Depends(session)]
BuildingHead = Annotated[Session, Depends(require("building_head"))]
Police = Annotated[Session, Depends(require("police"))]
Installer = Annotated[Session, Depends(require("installer"))]
HeadOrPolice = Annotated[Session, Depends(require("building_head", "police"))]
