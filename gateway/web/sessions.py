"""Server-side login sessions and the login throttle, held in the gateway's memory.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the server keeps only the
token's SHA-256, the user, the role and the CSRF token. Logout deletes it, so a copied cookie
is worthless afterwards (Starlette's SessionMiddleware, a signed cookie, cannot do that). An
idle session ends after `idle_seconds`, any session after `max_seconds`. Kept in memory, not
in SQLite: a page view would otherwise be a write to the SD card, and a restart of the gateway
only means logging in again.

One user holds at most `max_per_user` sessions (a new one ends that user's longest idle), and
all users together at most `max_sessions`; when those are all other users' live sessions a new
login is refused (`SessionsFull`), so no account's logins can push another account out.

    sessions = Sessions()
    token, session = sessions.create("wang-li", "building_head", remote="192.168.1.20")
    sessions.get(token)          # the session, its idle timer restarted; None once ended
    sessions.revoke(token)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.store import Role

# Police investigations and a building head's registrations are short visits to the page.
IDLE_SECONDS = 15 * 60
MAX_SECONDS = 12 * 3600
# SPEC 4: 429 after 5 failures for one username in 15 minutes.
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
# A flood of sessions or of usernames must not grow memory without bound.
MAX_SESSIONS = 1000
# A phone, a laptop and a few more: one account's logins only ever end its own sessions.
MAX_SESSIONS_PER_USER = 10
MAX_THROTTLED_NAMES = 10_000


class SessionsFull(Exception):
    """Every session slot is held by other users' live sessions: the login must wait."""


class PasswordChanged(Exception):
    """The user's sessions were ended (a password change) while this login was checked."""


@dataclass(slots=True)
class Session:
    """One logged-in user."""

    username: str
    role: Role
    csrf_token: str
    remote: str | None
    created: float  # monotonic
    last_seen: float  # monotonic
    must_change: bool = False  # logged in with a one-time password: only /password works


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    """The live sessions; thread-safe (uvicorn runs sync routes on a thread pool)."""

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
        self._by_digest: dict[bytes, Session] = {}
        self._by_user: dict[str, set[bytes]] = {}  # casefolded username: its sessions' digests
        # Bumped when all of a user's sessions end: a login checked before that must not
        # create a session after it (it may have used the password just replaced).
        self._generation: dict[str, int] = {}

    def generation(self, username: str) -> int:
        """Pass to `create` after checking the password: how often the user's sessions ended."""
        with self._lock:
            return self._generation.get(username.casefold(), 0)

    def create(self, username: str, role: Role, remote: str | None,
               must_change: bool = False, generation: int | None = None,
               ) -> tuple[str, Session]:  # fmt: skip
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

    def get(self, token: str | None) -> Session | None:
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

    def _ended(self, session: Session, now: float) -> bool:
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


class LoginThrottle:
    """Failed logins per username (case-insensitive): refused after 5 in 15 minutes.

    Counted per username, not per address, as SPEC 4 says: guessing one account's password
    from many addresses is what this stops. A password check is reserved before it starts and
    counts as a failure until it ends, so parallel attempts cannot check more than 5 between
    them; a success clears the name's count.

        wait = throttle.reserve("wang")   # 0: go ahead and check; else seconds to wait
        throttle.failed("wang")           # or succeeded("wang"), or release("wang") if unchecked
    """

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._checking: dict[str, int] = {}  # reserved checks not finished yet

    def retry_after(self, username: str) -> int:
        """Seconds until `username` may try again; 0 when it may now."""
        with self._lock:
            return self._wait(username.casefold(), self._clock())

    def reserve(self, username: str) -> int:
        """Reserve one password check for `username`: 0 if reserved, else seconds to wait.

        A reservation must end with `failed`, `succeeded` or `release`.
        """
        key = username.casefold()
        with self._lock:
            wait = self._wait(key, self._clock())
            if not wait:
                self._checking[key] = self._checking.get(key, 0) + 1
            return wait

    def failed(self, username: str) -> None:
        now = self._clock()
        key = username.casefold()
        with self._lock:
            self._end_check(key)
            if key not in self._failures and len(self._failures) >= MAX_THROTTLED_NAMES:
                self._prune(now)
            self._recent(key, now).append(now)

    def succeeded(self, username: str) -> None:
        key = username.casefold()
        with self._lock:
            self._end_check(key)
            self._failures.pop(key, None)

    def release(self, username: str) -> None:
        """End a reservation whose password was never checked (the check could not run)."""
        with self._lock:
            self._end_check(username.casefold())

    def _wait(self, key: str, now: float) -> int:
        failures: deque[float] = self._recent(key, now) if key in self._failures else deque()
        if len(failures) >= self.max_failures:
            return max(1, int(failures[0] + self.window_seconds - now) + 1)
        if len(failures) + self._checking.get(key, 0) >= self.max_failures:
            return 1  # the checks under way decide; a check takes a fraction of a second
        return 0

    def _end_check(self, key: str) -> None:
        left = self._checking.get(key, 0) - 1
        if left > 0:
            self._checking[key] = left
        else:
            self._checking.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque(maxlen=self.max_failures))
        while failures and now - failures[0] > self.window_seconds:
            failures.popleft()
        return failures

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            if not self._recent(key, now):
                del self._failures[key]


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
