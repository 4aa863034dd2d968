"""A few connections to the store shared by the threads of the web process.

    pool = StorePool(store, url=search_url, size=8)     # connections made when first needed
    rows = pool.run(lambda opened: fleet.fleet(opened.db, now=..., silent_after=...))

Each call borrows one `Store` (its own database connection, the same store key and pictures),
runs, and gives it back; a thread waits when all `size` are lent. A connection left broken by
a database restart is dropped and the call tried once more on a new one, as the platform's
readers do; a second failure is the caller's (the web answers 503).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from .database import Database, transient
from .opening import Store
from .sealing import Sealer

T = TypeVar("T")

# The web's worker threads share these; a PostgreSQL connection costs the server a process.
POOL_SIZE = 8


class StorePool:
    """Up to `size` connections to `url` (the store's own database by default)."""

    def __init__(self, store: Store, *, url: str | None = None, size: int = POOL_SIZE) -> None:
        self._template = store
        self.url = url or store.config.url
        self._idle: queue.LifoQueue[Store] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._all: list[Store] = []

    @property
    def sealer(self) -> Sealer:
        """The store key's sealer (the same for every connection)."""
        return self._template.sealer

    def run(self, work: Callable[[Store], T]) -> T:
        """`work(store)` on a borrowed connection; tried once more after a transient error."""
        with self._slots:
            opened = self._borrow()
            try:
                try:
                    return work(opened)
                except Exception as exc:
                    if not transient(exc):
                        raise
                opened.db.drop()  # stale after a database restart: once more, anew
                return work(opened)
            finally:
                self._idle.put(opened)

    def detached(self) -> Store:
        """A connection of its own, outside the pool, for work that outlasts a request (an
        export streamed to a slow client); the caller closes it."""
        template = self._template
        return Store(template.config, Database(self.url), template.sealer, template.snapshots)

    def _borrow(self) -> Store:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        made = self.detached()
        with self._lock:
            self._all.append(made)
        return made

    def close(self) -> None:
        """Close every connection made."""
        with self._lock:
            for opened in self._all:
                opened.close()
