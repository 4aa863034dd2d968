"""Ingest: what the broker delivers goes into the database, and only then is PUBACKed.

The session's thread hands every message here (`receive`); the writer thread stores them in
batches (one transaction each, up to `batch_max` messages) and only then hands the batch back
to the session's thread, which PUBACKs it (paho's `manual_ack`) and lets the acks role publish
the watermarks the batch moved. So a broker never drops a message the database has not got.
The writer thread also runs the other writes (`write`), between two batches: command
counters and records; and once an interval the upkeep (partitions ahead, retention). While the
database is away (PostgreSQL restarting), the writer tries the same batch again with back-off;
nothing is PUBACKed meanwhile.
"""

from __future__ import annotations

import contextlib
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

from cloud_sync.backoff import Backoff
from cloud_sync.topics import gateway_of

from . import store
from .settings import PlatformSettings, PlatformStats
from .store import BatchOutcome, Incoming, Store, StoreConfig

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
        stored: Callable[[BatchOutcome], None],
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
        self._writer: Store | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap, floor=0.0)
        self._upkeep_due = 0.0

    @property
    def store(self) -> Store:
        """The writer's store (open once `start` has returned)."""
        assert self._writer is not None
        return self._writer

    def start(self) -> None:
        """Open the database (migrated, partitions made), start the writer thread."""
        s = self.settings
        config = StoreConfig.for_url(s.db, key_file=s.store_key, snapshot_dir=s.snapshot_dir,
                                     limits=s.limits)  # fmt: skip
        self._writer = Store.open(config)
        self._upkeep(time.time())
        self._thread = threading.Thread(target=self._run_writer, name="platform-db", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Store what was received, then close."""
        if self._thread is None:
            return
        self._stopping.set()  # a writer waiting for the database gives up
        self._inbox.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        self.store.close()

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

    def write(self, function: Callable[[Store], T]) -> T:
        """Run `function(store)` on the writer thread, between two batches."""
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
        pending: object = None
        while True:
            item = pending if pending is not None else self._inbox.get()
            pending = None
            if item is _STOP:
                return
            if isinstance(item, _Job):
                self._run_job(item)
                continue
            if time.monotonic() >= self._upkeep_due:
                self._upkeep(time.time())
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
            messages = [r.message for r in batch]
            try:
                outcome = self._retrying(functools.partial(store.store_batch, messages=messages))
            except InterruptedError:
                return  # stopping while the database was away: nothing was PUBACKed
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

    def _run_job(self, job: _Job) -> None:
        try:
            job.done.set_result(self._retrying(job.function))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            job.done.set_exception(exc)

    def _retrying(self, work: Callable[[Store], T]) -> T:
        """`work(writer store)`, tried again with back-off while the database is away."""
        writer = self.store

        def failed(why: str) -> None:
            self.stats.last_error = why

        return store.retrying(writer.db, lambda _db: work(writer), self._stopping,
                              self._backoff, failed)  # fmt: skip

    def _upkeep(self, now: float) -> None:
        """Partitions ahead and retention (docs/platform.md, "History"), once an interval."""
        self._upkeep_due = time.monotonic() + self.settings.upkeep_interval
        with contextlib.suppress(InterruptedError):
            self._retrying(lambda c: store.upkeep(c, now))

    def _fail_waiting_jobs(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                item.done.set_exception(exc)

    def _count(self, outcome: BatchOutcome, size: int) -> None:
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

    def _committed(self, pubacks: list[Puback], outcome: BatchOutcome) -> None:
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
