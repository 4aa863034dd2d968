"""Follow the journal from any process: each committed event once, in seq order, final.

The door part commits events; the others learn of them here rather than from the door's
process (which they must never be able to slow down): the uplink sends them, the web page
waits for a new card, the demo prints them. A watcher polls SQLite's `data_version`, which
costs no I/O when nothing changed, and reads only events whose snapshot is settled.

    watcher = JournalWatcher(store, after_seq=store.last_seq())
    watcher.add_listener(print)
    watcher.start()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gateway.store import JournalEntry, Store, StoreClosed

log = logging.getLogger(__name__)

EventListener = Callable[[JournalEntry], None]
POLL_SECONDS = 0.05
_BATCH = 500


class JournalWatcher:
    """Calls each listener with every event above `after_seq`, on a thread of its own."""

    def __init__(self, store: Store, *, after_seq: int, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._after = after_seq
        self._poll = poll_seconds
        self._listeners: list[EventListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener(entry)` for each event from now on (on the watcher's thread)."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal-watch", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the thread runs (for health: a dead watcher is a part that went deaf)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        seen_version: int | None = None
        while not self._stop.wait(self._poll):
            try:
                version = self._store.data_version()
                if version == seen_version:
                    continue
                seen_version = version
                while entries := self._store.events_after(self._after, _BATCH):
                    for entry in entries:
                        self._hand_on(entry)
                        self._after = entry.seq
                    if len(entries) < _BATCH:
                        break
            except StoreClosed:
                return

    def _hand_on(self, entry: JournalEntry) -> None:
        for listener in self._listeners:
            try:
                listener(entry)
            except Exception:  # one listener (a display, a kick) must never stop the others
                log.exception("event listener failed")
