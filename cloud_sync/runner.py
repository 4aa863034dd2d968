"""The thread that owns MQTT sessions: one selector over their sockets, one at a time.

paho's client is not thread-safe, so every call into a session's client happens here (see
session.py). A gateway runs one uplink session on one Runner, and so does each platform
instance with its consumer; the fleet benchmark runs a thousand per Runner, which is why the
loop only services the sessions that had traffic or whose timer came due instead of sweeping
all of them on every wake-up.

    runner = Runner()
    runner.add(session)
    runner.start()
    runner.call_soon(session.kick)    # from any thread
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .session import Session

log = logging.getLogger(__name__)


class Runner:
    """Drive sessions from one thread until `stop()`."""

    def __init__(self, name: str = "mqtt") -> None:
        self._name = name
        self._sessions: list[Session[Any]] = []
        self._selector = selectors.DefaultSelector()
        self._registered: dict[Session[Any], tuple[Any, int]] = {}
        self._calls: queue.SimpleQueue[tuple[Callable[[], None], Session[Any] | None]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # (when, tie-breaker, session); stale entries (not the session's `_next` any more) are
        # skipped when popped, so rescheduling is a push, never a search.
        self._due: list[tuple[float, int, Session[Any]]] = []
        self._next: dict[Session[Any], float] = {}
        self._order = itertools.count()
        # Sessions that stopped reading with bytes still waiting (a burst's bound).
        self._unread: dict[Session[Any], None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, session: Session[Any]) -> None:
        """Drive `session` (before start, or from the runner's thread via call_soon)."""
        session.on_socket_change = self._update
        session.call_soon = lambda fn: self.call_soon(fn, session)
        self._sessions.append(session)
        self._schedule(session, 0.0)

    @property
    def sessions(self) -> list[Session[Any]]:
        """The sessions driven here."""
        return self._sessions

    def start(self) -> None:
        """Start the thread."""
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """Whether the thread runs: started, not stopped, and not ended by an exception."""
        return self._thread is not None and self._thread.is_alive()

    def call_soon(self, fn: Callable[[], None], session: Session[Any] | None = None) -> None:
        """Run `fn()` on the runner's thread as soon as it wakes (thread-safe).

        Name the `session` that `fn` touches, so its socket is flushed right after.
        """
        self._calls.put((fn, session))
        # A full wake-up pipe means the runner is awake anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = 5.0) -> None:
        """Close every session (offline status, DISCONNECT) and end the thread."""
        if self._thread is None:
            return

        def close_all() -> None:
            for session in self._sessions:
                try:
                    session.close()
                except Exception:  # one broken session must not keep the others connected
                    log.exception("closing session %s failed", session.link.client_id)
            self._stop.set()

        self.call_soon(close_all)
        self._thread.join(timeout)
        self._thread = None
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------------ loop

    def _update(self, session: Session[Any]) -> None:
        """Keep the selector in line with the session's socket and write interest."""
        sock = session.socket()
        old = self._registered.get(session)
        if sock is None:
            if old is not None:
                self._unregister(session, old[0])
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if session.want_write() else 0)
        if old is not None and old[0] is sock:
            if old[1] != events:
                self._selector.modify(sock, events, session)
                self._registered[session] = (sock, events)
            return
        if old is not None:
            self._unregister(session, old[0])
        try:
            self._selector.register(sock, events, session)
            self._registered[session] = (sock, events)
        except (ValueError, KeyError, OSError):
            log.warning("socket of %s could not be watched", session.link.client_id)

    def _unregister(self, session: Session[Any], sock: Any) -> None:
        self._registered.pop(session, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = max(0.0, min(1.0, self._due[0][0] - time.monotonic())) if self._due else 1.0
            touched: dict[Session[Any], None] = {}
            unread, self._unread = self._unread, {}
            for session in unread:
                self._read(session, touched)
            for key, mask in self._selector.select(0.0 if unread else timeout):
                session = key.data
                if session is None:
                    self._drain_wakeups()
                    continue
                if mask & selectors.EVENT_READ:
                    self._read(session, touched)
                if mask & selectors.EVENT_WRITE:
                    session.on_writable()
                touched[session] = None
            while True:
                try:
                    call, owner = self._calls.get_nowait()
                except queue.Empty:
                    break
                call()
                if owner is not None:
                    touched[owner] = None
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                when, _, session = heapq.heappop(self._due)
                if self._next.get(session) == when:
                    touched[session] = None
            for session in touched:
                self._schedule(session, time.monotonic() + session.service())
                self._update(session)

    def _read(self, session: Session[Any], touched: dict[Session[Any], None]) -> None:
        if session.on_readable():
            self._unread[session] = None
        touched[session] = None

    def _schedule(self, session: Session[Any], when: float) -> None:
        self._next[session] = when
        heapq.heappush(self._due, (when, next(self._order), session))

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
