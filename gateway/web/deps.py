"""What every route needs: the running gateway, the session, the role, the CSRF check.

Roles are dependencies, never `if`s in a route body (`web_security.roles`, over the gateway's
roles):

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
import secrets
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, Response

from gateway.camera.snapshots import SnapshotStore
from gateway.store import SNAPSHOT_TYPES, JournalEntry, Role, Store
from gateway.store.models import ROLES
from web_security.login import remote_address, restart_sessions
from web_security.roles import RoleGuard
from web_security.sessions import MemorySessions, Session
from web_security.throttle import LoginThrottle

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
    def hold(self, session: Session[Role]) -> Iterator[str | None]:
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


class SetupCode:
    """The one-time code that creates the first account, while no user exists.

    `gateway run` prints it on a start with no users; it is kept only in memory, works once,
    and stops working as soon as any user exists (made here or by `gateway users add`).
    """

    def __init__(self) -> None:
        self._code: str | None = None
        self._lock = threading.Lock()

    def issue(self) -> str:
        with self._lock:
            raw = secrets.token_hex(6).upper()
            self._code = "-".join(raw[i:i + 4] for i in range(0, 12, 4))
            return self._code

    def use(self, code: str) -> bool:
        with self._lock:
            expected = self._code
            if expected is None:
                return False
            ok = hmac.compare_digest(code.strip().upper().encode(), expected.encode())
            if ok:
                self._code = None
            return ok

    def put_back(self, code: str) -> None:
        """Make a code `use` accepted work again: its account could not be made after all."""
        with self._lock:
            if self._code is None:
                self._code = code.strip().upper()

    @property
    def active(self) -> bool:
        return self._code is not None


@dataclass(slots=True)
class WebState:
    """Shared by every request: the gateway, its sessions, the login throttle."""

    gateway: WebGateway
    sessions: MemorySessions[Role]
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


def snapshot_response(request: Request, user: Session[Role], store: Store, state: WebState,
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


def change_password(request: Request, response: Response, state: WebState, store: Store,
                    username: str, new: str) -> Session[Role]:  # fmt: skip
    """Replace the user's password and end every session of theirs, the caller's too; the
    caller goes on in a fresh session set on `response` (`restart_sessions`).

    ValidationError for a weak password, HashingBusy, SessionsFull (then the user logs in
    again).
    """
    store.set_password(username, new)
    return restart_sessions(request, response, state, store.get_user(username))


GUARD = RoleGuard[Role](ROLES, lambda request: web_state(request).sessions)

StateDep = Annotated[WebState, Depends(web_state)]
StoreDep = Annotated[Store, Depends(store)]
AnyUser = Annotated[Session[Role], Depends(GUARD.session)]
BuildingHead = Annotated[Session[Role], Depends(GUARD.require("building_head"))]
Police = Annotated[Session[Role], Depends(GUARD.require("police"))]
HeadOrPolice = Annotated[Session[Role], Depends(GUARD.require("building_head", "police"))]
