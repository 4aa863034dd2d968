"""Server-side login sessions: what a session is, what stores them, and the in-memory store.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the server keeps only the
token's SHA-256, the user, the role and the CSRF token. Logout deletes it, so a copied cookie
is worthless afterwards (Starlette's SessionMiddleware, a signed cookie, cannot do that). An
idle session ends after `idle_seconds`, any session after `max_seconds`.

`SessionStore` is what the login code and the role dependencies need of a store; an
application picks one. `MemorySessions` keeps them in the process's memory: the gateway's
choice, since a page view would otherwise be a write to the SD card, and a restart only means
logging in again.

One user holds at most `max_per_user` sessions (a new one ends that user's longest idle), and
all users together at most `max_sessions`; when those are all other users' live sessions a new
login is refused (`SessionsFull`), so no account's logins can push another account out.

    sessions = MemorySessions[Role]()
    token, session = sessions.create("wang-li", "building_head", remote="192.168.1.20")
    sessions.get(token)          # the session, its idle timer restarted; None once ended
    sessions.revoke(token)
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

# An application's roles: a Literal of strings or a StrEnum.
R = TypeVar("R", bound=str)

# Police investigations and a building head's registrations are short visits to the page.
IDLE_SECONDS = 15 * 60
MAX_SECONDS = 12 * 3600
# A flood of sessions must not grow memory without bound.
MAX_SESSIONS = 1000
# A phone, a laptop and a few more: one account's logins only ever end its own sessions.
MAX_SESSIONS_PER_USER = 10


class SessionsFull(Exception):
    """Every session slot is held by other users' live sessions: the login must wait."""


class PasswordChanged(Exception):
    """The user's sessions were ended (a password change) while this login was checked."""


@dataclass(slots=True)
class Session(Generic[R]):
    """One logged-in user."""

    username: str
    role: R
    csrf_token: str
    remote: str | None
    created: float  # monotonic
    last_seen: float  # monotonic
    must_change: bool = False  # logged in with a one-time password: only /password works


class SessionStore(Protocol[R]):
    """Where an application keeps its sessions; every method is safe to call from any thread."""

    def generation(self, username: str) -> int:
        """Pass to `create` after checking the password: how often the user's sessions ended."""
        ...

    def create(self, username: str, role: R, remote: str | None,
               must_change: bool = False, generation: int | None = None,
               ) -> tuple[str, Session[R]]:  # fmt: skip
        """A new session; returns (cookie token, session). PasswordChanged if `generation`
        is not the user's any more, SessionsFull when there is no room."""
        ...

    def get(self, token: str | None) -> Session[R] | None:
        """The live session for a cookie token, its idle timer restarted; else None."""
        ...

    def revoke(self, token: str | None) -> bool:
        """End one session (logout); False if there was none."""
        ...

    def revoke_user(self, username: str) -> int:
        """End every session of a user (password changed); returns how many."""
        ...

    def count(self) -> int:
        """Live sessions now."""
        ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class MemorySessions(Generic[R]):
    """A `SessionStore` in this process's memory; thread-safe (uvicorn runs sync routes on a
    thread pool)."""

    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        max_per_user: int = MAX_SESSIONS_PER_USER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self._clock = clock
        self._lock = threading.Lock()
        self._by_digest: dict[bytes, Session[R]] = {}
        self._by_user: dict[str, set[bytes]] = {}  # casefolded username: its sessions' digests
        # Bumped when all of a user's sessions end: a login checked before that must not
        # create a session after it (it may have used the password just replaced).
        self._generation: dict[str, int] = {}

    def generation(self, username: str) -> int:
        """Pass to `create` after checking the password: how often the user's sessions ended."""
        with self._lock:
            return self._generation.get(username.casefold(), 0)

    def create(self, username: str, role: R, remote: str | None,
               must_change: bool = False, generation: int | None = None,
               ) -> tuple[str, Session[R]]:  # fmt: skip
        """A new session; returns (cookie token, session).

        With `generation` (taken before the password was checked), PasswordChanged if the
        user's sessions were ended since. SessionsFull if all `max_sessions` are other users'.
        """
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(username, role, secrets.token_urlsafe(32), remote, now, now,
                          must_change)  # fmt: skip
        key = username.casefold()
        with self._lock:
            if generation is not None and self._generation.get(key, 0) != generation:
                raise PasswordChanged
            self._expire(now)
            own = self._by_user.get(key, set())
            if len(own) >= self.max_per_user or (own and len(self._by_digest) >= self.max_sessions):
                # The user's longest idle session makes room: a real user is active, a flood
                # of logins is not, and another user's session is never the one to go.
                self._drop(min(own, key=lambda d: self._by_digest[d].last_seen))
            elif len(self._by_digest) >= self.max_sessions:
                raise SessionsFull
            digest = _digest(token)
            self._by_digest[digest] = session
            self._by_user.setdefault(key, set()).add(digest)
        return token, session

    def get(self, token: str | None) -> Session[R] | None:
        """The live session for a cookie token, its idle timer restarted; else None."""
        if not token or len(token) > 128:
            return None
        digest = _digest(token)
        now = self._clock()
        with self._lock:
            session = self._by_digest.get(digest)
            if session is None:
                return None
            if self._ended(session, now):
                self._drop(digest)
                return None
            session.last_seen = now
            return session

    def revoke(self, token: str | None) -> bool:
        """End one session (logout); False if there was none."""
        if not token:
            return False
        with self._lock:
            return self._drop(_digest(token))

    def revoke_user(self, username: str) -> int:
        """End every session of a user (password changed); returns how many.

        A login whose password check began before this call cannot start a session after it
        (see `generation`).
        """
        key = username.casefold()
        with self._lock:
            self._generation[key] = self._generation.get(key, 0) + 1
            doomed = list(self._by_user.get(key, ()))
            for digest in doomed:
                self._drop(digest)
        return len(doomed)

    def count(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._by_digest)

    def _ended(self, session: Session[R], now: float) -> bool:
        return (now - session.last_seen > self.idle_seconds
                or now - session.created > self.max_seconds)  # fmt: skip

    def _expire(self, now: float) -> None:
        for digest in [d for d, s in self._by_digest.items() if self._ended(s, now)]:
            self._drop(digest)

    def _drop(self, digest: bytes) -> bool:
        session = self._by_digest.pop(digest, None)
        if session is None:
            return False
        key = session.username.casefold()
        own = self._by_user.get(key)
        if own is not None:
            own.discard(digest)
            if not own:
                del self._by_user[key]
        return True
