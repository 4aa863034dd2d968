"""The single writer thread: every write runs there, one BEGIN IMMEDIATE transaction each.

Serialising writes through one thread (as Datasette does) means SQLite never sees two writers
from this process, so "database is locked" cannot happen between our own threads, and each
caller still gets its own commit: `submit()` returns only after COMMIT, or raises what the
function raised after ROLLBACK.

Two kinds of work wait for the thread to have time, so that a caller's commit carries only
its own changes:

- deferred writes (`defer()`), such as the uplink's acknowledgement watermark: a later value
  replaces a pending one, and the last is written with a caller's transaction once it has
  waited DEFER_SETTLE_SECONDS, on its own after DEFER_MAX_SECONDS, or at close;
- the journal's block index (`journal.index_next_block`), one block per transaction, while
  no caller waits.

A writer that must not hold up another process's commits (the door part's) is given a
`Yielding`: its transactions take that process's priority while they hold the write lock, and
its disk writes are paced, so that the other's fsync does not queue behind them.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from . import journal
from .db import WRITER_BUSY_TIMEOUT_MS
from .errors import StoreClosed, StoreError

T = TypeVar("T")
_Job = tuple[Callable[[sqlite3.Connection], Any], "Future[Any]", bool]

log = logging.getLogger(__name__)

# A deferred write rides with the first caller's transaction once it has waited this long (so
# a stream of acks costs one write a second, not one per event), and is written on its own
# once it has waited DEFER_MAX_SECONDS without one. Losing it in a power cut loses that long.
DEFER_SETTLE_SECONDS = 1.0
DEFER_MAX_SECONDS = 5.0
# When idle, look this often for events to index that another process journaled.
IDLE_CHECK_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Yielding:
    """How a writer gives way to another process's commits.

    `lock_nice`: while a transaction holds the write lock, the thread runs at this niceness
    (a priority ceiling: a niced process holding the lock the door waits for runs as the door
    does), if the system allows it (root, or the unit's LimitNICE=).

    `disk_bytes_per_s`, `disk_burst_bytes`: the thread's writes to storage (/proc's
    write_bytes: the WAL, checkpoints, spilled pages), as a leaky bucket. A commit's fsync
    returns when the device has written what it holds, everyone's: after a transaction that
    leaves the bucket over `disk_burst_bytes`, the thread waits (holding no lock) until it is
    back under, at most MAX_PAUSE_SECONDS per transaction.
    """

    lock_nice: int | None = None
    disk_bytes_per_s: float | None = None
    disk_burst_bytes: int = 4 << 20


# A pause after one transaction is at most this long, however much it wrote (a one-off large
# transaction is not followed by minutes of silence).
MAX_PAUSE_SECONDS = 2.0
_sleep = time.sleep  # the pause (tests record it instead)


class _DiskPacer:
    """The leaky bucket of `Yielding`, fed from the writer thread's own write_bytes."""

    def __init__(self, bytes_per_s: float, burst: int) -> None:
        self._rate = bytes_per_s
        self._burst = burst
        self._level = 0.0
        self._seen = _thread_written()
        self._at = time.monotonic()

    def pause(self) -> float:
        """Seconds to wait now, given what this thread wrote since the last call."""
        written = _thread_written()
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._at) * self._rate)
        self._level += max(0, written - self._seen)
        self._level = min(self._level, self._burst + self._rate * MAX_PAUSE_SECONDS)
        self._seen, self._at = written, now
        return max(0.0, (self._level - self._burst) / self._rate)


def _thread_written() -> int:
    """Bytes the calling thread has caused to be written to storage (0 if /proc says not)."""
    return written_bytes("/proc/thread-self/io")


def written_bytes(io_file: str) -> int:
    """`write_bytes` of a /proc io file (a process's or a thread's): what it has caused to be
    written to storage; 0 if the file cannot be read."""
    try:
        with open(io_file, "rb") as f:
            for line in f:
                if line.startswith(b"write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass(slots=True)
class _Deferred:
    value: Any
    write: Callable[[sqlite3.Connection, Any], None]
    since: float  # monotonic time of the oldest value not written


class Writer:
    """Run functions against the writing connection, each in its own committed transaction.

    >>> writer = Writer(conn); writer.start()            # doctest: +SKIP
    >>> writer.submit(lambda c: c.execute("INSERT ...").lastrowid)  # doctest: +SKIP
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        name: str = "store-writer",
        lock_timeout: float = WRITER_BUSY_TIMEOUT_MS / 1000,
        *,
        index: bool = True,
        yielding: Yielding | None = None,
        slow_ms: float | None = None,
    ) -> None:
        """`index=False`: never index the journal when idle (another process's writer does).
        `yielding`: how this writer gives way to another process's commits (see Yielding).
        `slow_ms`: log a transaction slower than this, split into its waits (the door's).
        """
        self._conn = conn
        self._index = index
        self._slow_ms = slow_ms
        self._yielding = yielding or Yielding()
        self._lock_nice = self._yielding.lock_nice  # None once the system refuses it
        self._pacer: _DiskPacer | None = None  # made in the writer thread
        self._lock_timeout = lock_timeout
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._storage_error: sqlite3.Error | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._deferred: dict[str, _Deferred] = {}
        # Deferred values written by the transaction now running: (key, value) once committed.
        self._written: list[tuple[str, Any]] = []
        self._idle_checked = 0.0
        self._retry_at = 0.0  # no background write before this (after one failed)

    def start(self) -> None:
        """Start the thread; call once."""
        self._thread.start()

    def healthy(self) -> bool:
        """The thread runs and the last transaction did not fail for a storage reason."""
        return self._thread.is_alive() and self._storage_error is None

    def in_writer_thread(self) -> bool:
        """True when called from inside a function the writer is running."""
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, lock: bool = True) -> T:
        """Run `fn(conn)` in the writer thread inside BEGIN IMMEDIATE; block until committed.

        With `lock=False` the transaction is a plain BEGIN: it takes the database's write lock
        only if `fn` writes to it. For functions that write TEMP tables only (bulk upserts stage
        their rows so), which other connections and processes never wait for.
        """
        if self.in_writer_thread():
            # The writer would wait for itself forever.
            raise StoreError("a write was started from inside a transaction; use its tx instead")
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._queue.put((fn, future, lock))
        return future.result()

    def defer(
        self,
        key: str,
        value: T,
        write: Callable[[sqlite3.Connection, T], None],
        merge: Callable[[T, T], T] = lambda old, new: new,
    ) -> T:
        """Have `write(conn, value)` done soon in the writer thread; return the value pending.

        A value still pending for `key` is replaced by `merge(pending, value)`. The write
        goes with the first transaction that starts DEFER_SETTLE_SECONDS after the first
        unwritten value, or alone after DEFER_MAX_SECONDS, or at close: callers get no
        commit of their own, and a power cut can lose the last few seconds of them.
        """
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            pending = self._deferred.get(key)
            if pending is None:
                self._deferred[key] = _Deferred(value, write, time.monotonic())
            else:
                pending.value = value = merge(pending.value, value)
                pending.write = write
            if len(self._deferred) == 1 and pending is None:
                self._queue.put(_WAKE)  # to wait for its deadline
        return value

    def deferred(self, key: str) -> Any:
        """The value deferred for `key` and not written yet, or None."""
        with self._lock:
            pending = self._deferred.get(key)
            return None if pending is None else pending.value

    def write_deferred(self, conn: sqlite3.Connection) -> None:
        """Write every deferred value now, in the transaction running (writer thread only)."""
        if not self.in_writer_thread() or not conn.in_transaction:
            raise StoreError("write_deferred() runs inside a write transaction")
        self._write_deferred(conn, 0.0)

    def close(self) -> None:
        """Finish the writes already queued and deferred, stop the thread, close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread.ident is not None:
            self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        rate = self._yielding.disk_bytes_per_s
        if rate is not None:
            self._pacer = _DiskPacer(rate, self._yielding.disk_burst_bytes)
        while True:
            try:
                job = self._queue.get(timeout=self._until_housekeeping())
            except queue.Empty:
                self._housekeeping()
                continue
            if job is None:
                break
            if job is not _WAKE:
                fn, future, lock = job
                if future.set_running_or_notify_cancel():
                    self._run_one(fn, future, lock)
            if self._queue.empty():
                self._housekeeping()
        # At close: what is deferred is written before the connection goes.
        if self._deferred:
            self._run_alone(lambda conn: self._write_deferred(conn, 0.0), self._lock_timeout)

    def _until_housekeeping(self) -> float:
        """Seconds until a deferred write is due alone, or until the next idle check."""
        now = time.monotonic()
        due = self._idle_checked + IDLE_CHECK_SECONDS
        with self._lock:
            for pending in self._deferred.values():
                due = min(due, pending.since + DEFER_MAX_SECONDS)
        return max(max(due, self._retry_at) - now, 0.0)

    def _housekeeping(self) -> None:
        """With no caller waiting: deferred writes that waited too long, then the index."""
        now = time.monotonic()
        if now < self._retry_at:
            return
        with self._lock:
            overdue = any(now - p.since >= DEFER_MAX_SECONDS for p in self._deferred.values())
        if overdue:
            self._run_alone(lambda conn: self._write_deferred(conn, DEFER_SETTLE_SECONDS), 0.0)
        self._idle_checked = now
        try:
            while self._index and self._queue.empty() and journal.index_due(self._conn):
                if not self._run_alone(journal.index_next_block, 0.0):
                    break
        except sqlite3.Error:
            log.debug("could not check the journal's index", exc_info=True)

    def _run_alone(self, fn: Callable[[sqlite3.Connection], Any], lock_timeout: float) -> bool:
        """Run `fn` in a transaction of its own; False if it failed (it is tried again later)."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        self._run_one(fn, future, True, lock_timeout, background=True)
        exc = future.exception()
        if exc is None:
            return True
        # Nobody waits for it: not worth more than a log line, and not before a second.
        self._retry_at = time.monotonic() + 1.0
        busy = isinstance(exc, sqlite3.Error) and _error_code(exc) == sqlite3.SQLITE_BUSY
        log.log(logging.DEBUG if busy else logging.WARNING, "background write failed: %s", exc)
        return False

    def _write_deferred(self, conn: sqlite3.Connection, settle: float) -> None:
        """Write the deferred values that have waited `settle` seconds, in a savepoint.

        They are forgotten only when the transaction commits; if writing them fails, the
        savepoint is undone and the caller's own changes still commit.
        """
        now = time.monotonic()
        with self._lock:
            due = [(key, p.value, p.write) for key, p in self._deferred.items()
                   if now - p.since >= settle and (key, p.value) not in self._written]  # fmt: skip
        if not due:
            return
        conn.execute("SAVEPOINT deferred")
        try:
            for _, value, write in due:
                write(conn, value)
        except Exception:  # the caller's own changes must not fail for it
            conn.execute("ROLLBACK TO deferred")
            log.warning("deferred write failed; trying again later", exc_info=True)
        else:
            self._written.extend((key, value) for key, value, _ in due)
        conn.execute("RELEASE deferred")

    def _committed(self) -> None:
        """Forget the deferred values the transaction just committed wrote."""
        with self._lock:
            for key, value in self._written:
                pending = self._deferred.get(key)
                if pending is not None and pending.value == value:
                    del self._deferred[key]
        self._written.clear()

    def _run_one(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        future: Future[Any],
        lock: bool,
        lock_timeout: float | None = None,
        *,
        background: bool = False,
    ) -> None:
        conn = self._conn
        self._written.clear()
        # Only a transaction that takes the write lock: staging TEMP tables (lock=False) is
        # the heavy part of an import and keeps the part's own priority.
        own_nice = self._raise_priority() if lock else None
        try:
            times = [time.perf_counter()]
            # IMMEDIATE takes the write lock now, so a second process writing at the same time
            # is waited for here instead of failing half-way through the function.
            self._begin("BEGIN IMMEDIATE" if lock else "BEGIN", lock_timeout)
            times.append(time.perf_counter())
            result = fn(conn)
            if not conn.in_transaction:
                raise StoreError("the transaction was ended inside the write function")
            if lock and not background and self._deferred:
                self._write_deferred(conn, DEFER_SETTLE_SECONDS)
            times.append(time.perf_counter())
            conn.execute("COMMIT")
            times.append(time.perf_counter())
            self._report_slow(times)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
            self._written.clear()
            self._rollback()
            if isinstance(exc, sqlite3.Error) and _is_storage_error(exc) and not background:
                self._storage_error = exc
            future.set_exception(exc)
        else:
            self._committed()
            self._storage_error = None
            future.set_result(result)
        finally:
            if own_nice is not None:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), own_nice)
            if self._pacer is not None and (pause := self._pacer.pause()):
                _sleep(pause)  # the caller has its result; the next transaction waits

    def _report_slow(self, times: list[float]) -> None:
        """Log a transaction over `slow_ms`: a worn SD card (the commit) or another process's
        transaction (the lock) shows in the log."""
        if self._slow_ms is None or (times[-1] - times[0]) * 1000 <= self._slow_ms:
            return
        lock, work, commit = ((b - a) * 1000 for a, b in itertools.pairwise(times))
        log.warning("slow write: %.0f ms waiting for the lock, %.0f ms writing, %.0f ms "
                    "committing", lock, work, commit)  # fmt: skip

    def _raise_priority(self) -> int | None:
        """Take the lock's niceness for one transaction; the thread's own, to go back to."""
        if self._lock_nice is None:
            return None
        tid = threading.get_native_id()
        own = os.getpriority(os.PRIO_PROCESS, tid)
        if own <= self._lock_nice:
            return None
        try:
            os.setpriority(os.PRIO_PROCESS, tid, self._lock_nice)
        except PermissionError:
            log.info("writes keep niceness %d: not allowed to take %d", own, self._lock_nice)
            self._lock_nice = None
            return None
        return own

    def _begin(self, statement: str, lock_timeout: float | None = None) -> None:
        """BEGIN, trying again while another process holds the lock, up to lock_timeout.

        Each try waits a few milliseconds in SQLite's busy handler (the connection's short
        busy_timeout), so the lock is taken within milliseconds of its release.
        """
        timeout = self._lock_timeout if lock_timeout is None else lock_timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise

    def _rollback(self) -> None:
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            # SQLite already rolled back (e.g. after SQLITE_FULL); the caller gets the
            # original error, which says more than this one.
            log.warning("ROLLBACK failed after a failed write", exc_info=True)


# Queued by defer() to wake the thread, which then waits for the deferred write's deadline.
_WAKE: Any = object()

# The disk, not the caller, is at fault: the health check reports these until a write succeeds.
_STORAGE_ERRORS = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)


def _is_storage_error(exc: sqlite3.Error) -> bool:
    code = _error_code(exc)
    return code is not None and code in _STORAGE_ERRORS


def _error_code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of the error, if it carries one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF
