"""The web process's side of the police audit (`rental_platform.audit`): one `AuditLog` on the
primary, its head anchored now and then.

    writer = AuditWriter(store, anchors=AnchorFile(path), signing_key=key)
    writer.run(lambda log: log.record(...))      # on the primary, even under --search-db
    writer.anchor()                              # every ANCHOR_SECONDS, and after an export
    writer.check()                               # the chain and every anchor: AuditCheck

Rows are appended one at a time (the AuditLog's lock; across instances the database's), on a
connection of their own: a search on the standby is answered only after its row committed on
the primary. A connection a database restart left broken is dropped and the row tried once
more on a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..audit import AnchorSink, AuditCheck, AuditError, AuditLog, verify
from ..store import Store
from ..store.database import Database, transient

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long rows may stay unanchored (docs/platform.md, "The audit"): cutting them off the end
# of the chain would go unnoticed that long.
ANCHOR_SECONDS = 60.0


class AuditWriter:
    """The audit of one web process; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        anchors: AnchorSink | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self._db = Database(store.config.url)
        self._store = store
        self._log = AuditLog(self._db, store.sealer)
        self._anchors = anchors if signing_key is not None else None
        self._key = signing_key
        self._stop = threading.Event()

    @property
    def anchored(self) -> bool:
        """Whether heads are signed and kept outside the database."""
        return self._anchors is not None

    def run(self, work: Callable[[AuditLog], T]) -> T:
        try:
            return work(self._log)
        except Exception as exc:
            if not transient(exc):
                raise
        self._db.drop()
        return work(self._log)

    def anchor(self) -> None:
        """Sign the head and append it outside the database (nothing when not configured).
        A chain no longer holding the last anchored head is logged, never signed."""
        if self._anchors is None or self._key is None:
            return
        key, sink = self._key, self._anchors
        try:
            self.run(lambda audit: audit.anchor(key, sink))
        except AuditError as refused:
            log.error("audit not anchored: %s", refused)

    def check(self) -> AuditCheck:
        """The whole chain verified, against every anchor when they are kept."""
        anchors = self._anchors.read() if self._anchors is not None else []
        # Without anchors no signature is checked, so any key serves the call.
        public = (self._key or Ed25519PrivateKey.generate()).public_key()
        return self.run(lambda audit: verify(audit.db, self._store.sealer, anchors, public))

    def keep_anchoring(self) -> None:
        """Anchor every ANCHOR_SECONDS on a thread of its own until `close`."""
        if self._anchors is None:
            return

        def loop() -> None:
            while not self._stop.wait(ANCHOR_SECONDS):
                self.anchor()

        threading.Thread(target=loop, name="audit-anchor", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.anchor()
        self._db.close()
