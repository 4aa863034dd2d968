"""The login lockout: failed logins counted per username (SPEC 4: 429 after 5 failures for one
username in 15 minutes).

`Throttle` is what the login code needs of a lockout; `LoginThrottle` counts in this process's
memory (the gateway: one web process). An application serving logins from several processes
keeps the counts where they all see them, behind the same interface (the city platform: in
its database).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
# A flood of usernames must not grow memory without bound.
MAX_THROTTLED_NAMES = 10_000


class Throttle(Protocol):
    """Failed logins per username: a check is reserved before it runs and ends one of three
    ways; every method is safe to call from any thread."""

    def reserve(self, username: str) -> int:
        """Reserve one password check: 0 if reserved, else seconds to wait (nothing reserved)."""
        ...

    def failed(self, username: str) -> None:
        """The reserved check found a wrong password: it counts."""
        ...

    def succeeded(self, username: str) -> None:
        """The reserved check found the right password: the name's count is cleared."""
        ...

    def release(self, username: str) -> None:
        """The reserved check could not run: it does not count."""
        ...


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
