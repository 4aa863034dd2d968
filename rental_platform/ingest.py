"""Ingest: what the broker delivers goes into the database, and only then is PUBACKed.

The session's thread hands every message here (`receive`); the writer thread stores them in
batches (one transaction each, up to `batch_max` messages) and only then hands the batch back
to the session's thread, which PUBACKs it (paho's `manual_ack`) and lets the acks role publish
the watermarks the batch moved. So a broker never drops a message the database has not got.
The writer thread also runs the other writes (`write`), between two batches: command
counters and records.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from cloud_sync.topics import gateway_of

from . import store
from .settings import PlatformSettings, PlatformStats
from .store import Incoming

log = logging.getLogger(__name__)

T = TypeVar("T")

# Run on the session's thread: PUBACK one received message; False if its connection is gone.
Puback = Callable[[], bool]


@dataclass(slots=True)
class _Received:
    message: Incoming
    puback: Puback


class _Job:
    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.done: Future[Any] = Future()


_STOP = object()


class Ingest:
    """Receiving, batching, the writer thread, PUBACK after commit."""

    def __init__(
        self,
        settings: PlatformSettings,
        stats: PlatformStats,
        post: Callable[[Callable[[], None]], None],
        stored: Callable[[store.BatchOutcome], None],
        failed: Callable[[], None],
    ) -> None:
        """`post(fn)` runs fn on the session's thread; `stored(outcome)` is called there after
        each batch's PUBACKs; `failed()` once the writer has stopped for good."""
        self.settings = settings
        self.stats = stats
        self.failure: BaseException | None = None  # what stopped the writer, if anything
        self._post = post
        self._stored = stored
        self._failed = failed
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the database (migrated), start the writer thread."""
        self._writer = store.connect(self.settings.db_path)
        store.migrate(self._writer)
        self._thread = threading.Thread(target=self._run_writer, name="platform-db", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Store what was received, then close."""
        if self._thread is None:
            return
        self._inbox.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        self._writer.close()

    def receive(self, msg: mqtt.MQTTMessage, puback: Puback) -> None:
        """A message from the broker, to store and then PUBACK (session's thread)."""
        self.stats.received += 1
        prefix = self.settings.prefix
        gateway_id = gateway_of(prefix, msg.topic)
        leaf = msg.topic[len(prefix) + len(gateway_id) + 2 :] if gateway_id else msg.topic
        acked = None
        props = msg.properties
        for key, value in getattr(props, "UserProperty", None) or []:
            if key == "acked":
                acked = _floor(value)
                if acked is None:
                    log.warning("bad acked property %r from %s", value[:30], gateway_id)
        message = Incoming(msg.topic, gateway_id, leaf, bytes(msg.payload), time.time(), acked)
        self._inbox.put(_Received(message, puback))

    def write(self, function: Callable[[Any], T]) -> T:
        """Run `function(connection)` on the writer thread, between two batches."""
        if self.failure is not None:
            raise RuntimeError("the platform's database writer failed") from self.failure
        if self._thread is None:
            raise RuntimeError("the platform is not running")
        job = _Job(function)
        self._inbox.put(job)
        result: T = job.done.result(timeout=60)
        return result

    # -- the writer thread ----------------------------------------------------------------------

    def _run_writer(self) -> None:
        conn = self._writer
        pending: object = None
        while True:
            item = pending if pending is not None else self._inbox.get()
            pending = None
            if item is _STOP:
                return
            if isinstance(item, _Job):
                self._run_job(conn, item)
                continue
            assert isinstance(item, _Received)
            batch = [item]
            while len(batch) < self.settings.batch_max:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, _Received):
                    pending = more
                    break
                batch.append(more)
            try:
                outcome = store.store_batch(conn, [r.message for r in batch])
            except Exception as exc:  # not carrying on: the platform stops
                # A database we cannot write: nothing more may be acknowledged. Stop, so that
                # `rental-platform run` exits and its supervisor restarts it.
                log.exception("storing a batch failed; the platform stops")
                self.failure = exc
                self.stats.last_error = f"database: {exc}"
                self._failed()
                self._fail_waiting_jobs(exc)
                return
            self._count(outcome, len(batch))
            pubacks = [r.puback for r in batch]
            self._post(functools.partial(self._committed, pubacks, outcome))

    def _run_job(self, conn: Any, job: _Job) -> None:
        try:
            job.done.set_result(job.function(conn))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            job.done.set_exception(exc)

    def _fail_waiting_jobs(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                item.done.set_exception(exc)

    def _count(self, outcome: store.BatchOutcome, size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.stored += outcome.stored
        stats.duplicates += outcome.duplicates
        stats.conflicts += outcome.conflicts
        stats.rejected += outcome.rejected
        stats.statuses += outcome.statuses
        stats.results += outcome.results
        stats.snapshots += outcome.snapshots
        if outcome.rejected:
            log.warning(
                "%d of %d messages rejected (see the rejects table)", outcome.rejected, size
            )

    # -- back on the session's thread -----------------------------------------------------------

    def _committed(self, pubacks: list[Puback], outcome: store.BatchOutcome) -> None:
        """The batch is committed: PUBACK its messages, and let the acks go out."""
        for puback in pubacks:
            if puback():
                self.stats.pubacks += 1
        self._stored(outcome)


def _floor(text: str) -> int | None:
    """The `acked` user property as a watermark, or None if it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)
