"""Entry snapshots for access events, taken off the door path.

The door path journals an access event with its seq held (`Store.append_event(capture=True)`)
and hands it to `Camera.request`, which only puts it on a queue; then the relay fires. The
camera's worker thread takes the newest fresh frame, encodes it as JPEG, writes it atomically
and fills `{"sha256", "bytes"}` into the event (`Store.fill_snapshot`), which lets the event
go up. A capture that has not ended by its deadline is filled with `snapshot_error: "timeout"`
by whoever waits for it (`Capture.result`), so a stalled disk or camera holds the uplink back
for at most the deadline, and the door never.

    camera = Camera(open_source(cfg.source), store, SnapshotStore(data_dir), settings)
    camera.start()
    capture = camera.request(entry)        # on the door path: a queue put
    final = capture.result()               # elsewhere: the entry as it goes up
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from gateway.camera.snapshots import (
    SnapshotNotStored,
    SnapshotStore,
    StoredSnapshot,
    encode_jpeg,
)
from gateway.camera.source import CameraSource, Frame, FrameSource, SnapshotError
from gateway.store import JournalEntry, Store

log = logging.getLogger(__name__)

# Retention and the disk floor are looked after this often, between captures.
HOUSEKEEPING_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """How snapshots are taken and kept (from `[camera]`)."""

    max_frame_age_ms: int = 1500
    jpeg_quality: int = 80
    max_height: int = 720
    retention_days: int = 30

    @property
    def deadline_s(self) -> float:
        """How long an event may wait for its snapshot before it goes up without one.

        A snapshot URL may take up to max_frame_age_ms to answer; encoding and an fsync on an
        SD card take well under a second more.
        """
        return max(2.0, self.max_frame_age_ms / 1000 + 1.0)


@dataclass(frozen=True, slots=True)
class CaptureTiming:
    """One capture, for the benchmarks: milliseconds from the event's commit."""

    on_disk_ms: float  # the JPEG written and fsynced
    frame_age_ms: float  # how old the frame was when the worker took it
    jpeg_bytes: int


@dataclass(slots=True)
class _Job:
    entry: JournalEntry
    requested: float  # monotonic
    deadline: float  # monotonic
    done: Future[JournalEntry | None] = field(default_factory=Future)


class Capture:
    """One event's snapshot on its way; `result()` is the entry as it goes up."""

    def __init__(self, camera: Camera, job: _Job) -> None:
        self._camera = camera
        self._job = job

    @property
    def entry(self) -> JournalEntry:
        """The event as journaled, before its snapshot was filled in."""
        return self._job.entry

    def result(self) -> JournalEntry:
        """Wait until the capture ends or its deadline passes; the event's final entry."""
        job = self._job
        try:
            final = job.done.result(timeout=max(0.0, job.deadline - self._camera.clock()))
        except FutureTimeout:
            final = self._camera.give_up(job)
        return final if final is not None else job.entry


class Camera:
    """The building camera: a frame source, the snapshot folder and one capture worker."""

    def __init__(
        self,
        source: CameraSource,
        store: Store,
        snapshots: SnapshotStore,
        settings: CaptureSettings,
        *,
        today: Callable[[], date] = date.today,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.store = store
        self.snapshots = snapshots
        self.settings = settings
        self.clock = clock
        self._today = today
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._housekept = float("-inf")
        self.outcomes: Counter[str] = Counter()  # "stored" or the snapshot_error
        self.timings: deque[CaptureTiming] = deque(maxlen=4096)

    def start(self) -> None:
        """Start the frame source and the capture worker."""
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the captures queued, then stop the worker and the source."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.settings.deadline_s + 5)
            self._thread = None
        self.source.stop()

    def unavailable(self) -> str | None:
        """The snapshot_error to record at once when no capture can succeed, else None.

        A stream known to be down gives "camera_offline" without holding the event back.
        A snapshot URL is always tried: its last failure says nothing about now.
        """
        if isinstance(self.source, FrameSource) and self.source.online is False:
            frame = self.source.latest(self.settings.max_frame_age_ms)
            if isinstance(frame, SnapshotError):
                return frame.reason
        return None

    def request(self, entry: JournalEntry, requested: float | None = None) -> Capture:
        """Capture a snapshot for held event `entry` (a queue put; safe on the door path);
        `requested` is when the door asked (time.monotonic(), one clock across processes)."""
        now = self.clock() if requested is None else requested
        job = _Job(entry, now, now + self.settings.deadline_s)
        self._queue.put(job)
        return Capture(self, job)

    def request_from_door(self, seq: int, event_id: str, ts: str, requested: float) -> None:
        """A capture the door part asked for over the camera socket; the door part records
        "timeout" itself if the deadline passes first."""
        self.request(JournalEntry(seq, event_id, {"ts": ts}, ""), requested)

    def alive(self) -> bool:
        """Whether the capture worker runs."""
        return self._thread is not None and self._thread.is_alive()

    def give_up(self, job: _Job) -> JournalEntry | None:
        """The deadline passed: record "timeout", unless the capture finished just now."""
        final = self.store.fill_snapshot(job.entry.seq, None, "timeout")
        if final is not None:
            self.outcomes["timeout"] += 1
            log.warning("snapshot of event %d: not taken within %.1f s", job.entry.seq,
                        self.settings.deadline_s)  # fmt: skip
            return final
        try:  # the worker filled it first: its result is on its way
            return job.done.result(timeout=5.0)
        except FutureTimeout:
            return None

    def health(self) -> dict[str, Any]:
        """For /healthz and the installer's page: no personal data."""
        return {"online": self.source.online, "captures": dict(self.outcomes)}

    # ---------------------------------------------------------------------- worker

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=60.0)
            except queue.Empty:
                self._housekeep_when_due()
                continue
            if job is None:
                return
            try:
                self._capture(job)
            except Exception:
                log.exception("snapshot of event %d failed", job.entry.seq)
                self.store.release_capture(job.entry.seq)
                job.done.set_result(None)
            if self._queue.empty():  # never while captures wait: deleting days takes a while
                self._housekeep_when_due()

    def _housekeep_when_due(self) -> None:
        if self.clock() - self._housekept < HOUSEKEEPING_SECONDS:
            return
        self._housekept = self.clock()
        try:
            self.housekeeping()
        except Exception:  # a disk error here must not end the capture worker
            log.exception("snapshot housekeeping failed")

    def _capture(self, job: _Job) -> None:
        entry = job.entry
        if self.clock() >= job.deadline:
            job.done.set_result(None)  # the waiter records the timeout
            return
        frame = self.source.latest(self.settings.max_frame_age_ms)
        snapshot: dict[str, Any] | None = None
        error: str | None = None
        stored = None
        if isinstance(frame, SnapshotError):
            error = frame.reason
        else:
            try:
                stored = self._store(entry, frame)
                snapshot = stored.reference()
            except SnapshotNotStored as exc:
                error = exc.reason
                log.warning("snapshot of event %d not stored: %s", entry.seq, exc.detail)
        final = self.store.fill_snapshot(entry.seq, snapshot, error)
        if final is None and stored is not None:
            # Too late: the event went up with "timeout" and nothing may point at this file.
            stored.path.unlink(missing_ok=True)
        elif final is not None:
            self.outcomes["stored" if error is None else error] += 1
            if stored is not None and isinstance(frame, Frame):
                self.timings.append(CaptureTiming(
                    on_disk_ms=(self.clock() - job.requested) * 1000,
                    frame_age_ms=frame.age_ms,
                    jpeg_bytes=stored.bytes,
                ))  # fmt: skip
        job.done.set_result(final)

    def _store(self, entry: JournalEntry, frame: Frame) -> StoredSnapshot:
        jpeg = encode_jpeg(frame.image, quality=self.settings.jpeg_quality,
                           max_height=self.settings.max_height)  # fmt: skip
        taken = datetime.fromisoformat(entry.body["ts"])
        try:
            return self.snapshots.save(entry.event_id, jpeg, taken=taken)
        except SnapshotNotStored as exc:
            if exc.reason != "disk_low" or not self._make_room():
                raise
            return self.snapshots.save(entry.event_id, jpeg, taken=taken)

    # ----------------------------------------------------------------- housekeeping

    def housekeeping(self) -> int:
        """Delete snapshots past retention (police holds kept), then make room if the disk
        is low; returns how many were deleted."""
        held = self._held()
        before = self._today() - timedelta(days=self.settings.retention_days)
        removed = self.snapshots.expire(before=before, held=held)
        if self.snapshots.free_mb() < self.snapshots.min_free_mb:
            removed += self._make_room(held)
        if removed:
            log.info("snapshots: %d deleted (retention %d days)", removed,
                     self.settings.retention_days)  # fmt: skip
        return removed

    def _make_room(self, held: frozenset[str] | None = None) -> int:
        """Oldest days first, never today's; returns how many snapshots went."""
        held = self._held() if held is None else held
        removed = self.snapshots.make_room(held=held, keep_from=self._today())
        if removed:
            log.warning("snapshots: disk below %d MB free, %d oldest deleted",
                        self.snapshots.min_free_mb, removed)  # fmt: skip
        return removed

    def _held(self) -> frozenset[str]:
        return frozenset(hold.event_id for hold in self.store.snapshot_holds())

