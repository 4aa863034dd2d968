"""Camera sources: the latest frame of a stream, or a JPEG fetched from a snapshot URL on demand.

OpenCV's `VideoCapture` buffers a live stream: a plain `read()` returns frames that grow older
by about 0.9 s every second. `FrameSource` therefore runs one reader thread per stream that
keeps only the newest frame, stamped with `time.monotonic()` when it was read; OpenCV's own
"ok" is not trusted, since after a read timeout `read()` returned `True` with frames 3-6 s old.
A frame older than the caller's `max_age_ms` is never handed out.

A camera that serves single JPEGs (`SnapshotUrlSource`) is fetched only when a snapshot is
asked for, so a Raspberry Pi decodes nothing between door events.

Example::

    source = open_source("rtsp://192.168.1.64:554/Streaming/Channels/102", on_state=log_state)
    source.start()
    result = source.latest(max_age_ms=1500)
    if isinstance(result, Frame):
        store(result.image)
    else:
        note(result.reason)  # "camera_offline", "stale_frame", ...
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud_sync.backoff import Backoff

log = logging.getLogger(__name__)

SnapshotErrorReason = Literal[
    "camera_offline", "stale_frame", "no_frame_yet", "bad_image", "disabled"
]

StateCallback = Callable[[bool, str], None]
"""Called with (online, reason) when a source goes online or offline; never twice in a row."""

Clock = Callable[[], float]

# A file has no natural pace: without one the reader would decode as fast as the CPU allows.
_FALLBACK_FPS = 25.0


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded BGR frame, when it was read (monotonic clock) and its age when handed out."""

    image: NDArray[np.uint8]
    read_at: float
    age_ms: float


@dataclass(frozen=True, slots=True)
class SnapshotError:
    """Why no frame could be given: the word that is recorded as the event's snapshot_error."""

    reason: SnapshotErrorReason


class CameraSource(Protocol):
    """What the snapshot code needs of any source."""

    @property
    def online(self) -> bool | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self, max_age_ms: int) -> Frame | SnapshotError: ...


def is_snapshot_url(source: str) -> bool:
    """Whether an http(s) source is a single-JPEG snapshot URL rather than an MJPEG stream.

    The rule: an http(s) URL whose path ends in .jpg or .jpeg, or whose URL contains
    "snapshot" (any case), is a snapshot URL; any other http(s) URL is an MJPEG stream.
    """
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https"):
        return False
    return parts.path.lower().endswith((".jpg", ".jpeg")) or "snapshot" in source.lower()


def open_source(
    source: str,
    *,
    on_state: StateCallback | None = None,
    open_timeout_ms: int = 5000,
    read_timeout_ms: int = 5000,
    fetch_timeout_ms: int = 5000,
) -> FrameSource | SnapshotUrlSource:
    """A source for a `[camera] source` string; nothing is opened until `start()`.

    http(s) URLs ending in .jpg/.jpeg or containing "snapshot" become a `SnapshotUrlSource`
    (fetched on demand, within `fetch_timeout_ms`); every other source, i.e. rtsp://, other
    http(s) URLs (MJPEG streams), /dev/videoN and video files (looped), becomes a
    `FrameSource` with its own reader thread and the open and read timeouts.
    """
    if is_snapshot_url(source):
        return SnapshotUrlSource(source, on_state=on_state, timeout_ms=fetch_timeout_ms)
    return FrameSource(
        source,
        on_state=on_state,
        open_timeout_ms=open_timeout_ms,
        read_timeout_ms=read_timeout_ms,
    )


class _OnlineState:
    """Turns every open/read outcome into a callback only when online/offline changes."""

    def __init__(self, on_state: StateCallback | None) -> None:
        self._on_state = on_state
        self._lock = threading.Lock()
        self.online: bool | None = None  # unknown until the first attempt

    def report(self, online: bool, reason: str) -> None:
        with self._lock:
            if self.online is online:
                return
            self.online = online
        log.log(logging.INFO if online else logging.WARNING, "camera %s: %s",
                "online" if online else "offline", reason)  # fmt: skip
        if self._on_state is not None:
            try:
                self._on_state(online, reason)
            except Exception:
                # Journaling the change failed (disk full, store closing): the reader thread
                # that reported it must go on reading frames all the same.
                log.exception("camera state change not recorded")


class FrameSource:
    """The latest frame of a stream (RTSP, MJPEG over http(s), /dev/videoN, looped video file).

    `start()` launches the reader thread; the constructor does no I/O. A stream that fails to
    open or stops delivering is reopened after a jittered back-off; a video file is reopened at
    its end at once, so it loops.
    """

    def __init__(
        self,
        source: str,
        *,
        on_state: StateCallback | None = None,
        open_timeout_ms: int = 5000,
        read_timeout_ms: int = 5000,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.source = source
        self._open_timeout_ms = open_timeout_ms
        self._read_timeout_ms = read_timeout_ms
        self._backoff = backoff if backoff is not None else Backoff(base=1.0, cap=30.0)
        self._clock = clock
        self._state = _OnlineState(on_state)
        self._lock = threading.Lock()
        self._latest: tuple[NDArray[np.uint8], float] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        scheme = source.split("://", 1)[0].lower() if "://" in source else ""
        self._is_file = not scheme and not source.startswith("/dev/")

    @property
    def online(self) -> bool | None:
        """True while frames arrive, False after a failure, None before the first attempt."""
        return self._state.online

    def start(self) -> None:
        """Start the reader thread (once)."""
        if self._thread is not None:
            raise RuntimeError("FrameSource already started")
        self._thread = threading.Thread(
            # Not named after the source: a camera URL may carry a password.
            target=self._run,
            name="camera-reader",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the reader; waits for it, which may take up to one open or read timeout."""
        self._stopping.set()
        if self._thread is not None:
            if timeout_s is None:
                timeout_s = (max(self._open_timeout_ms, self._read_timeout_ms) + 2000) / 1000
            self._thread.join(timeout_s)

    def latest(self, max_age_ms: int) -> Frame | SnapshotError:
        """The newest frame if it was read at most `max_age_ms` ago, else why there is none.

        A frame is given even if the camera went offline after it was read, as long as it is
        fresh: it still shows who was at the door.
        """
        with self._lock:
            latest = self._latest
        online = self._state.online
        if latest is None:
            return SnapshotError("camera_offline" if online is False else "no_frame_yet")
        image, read_at = latest
        age_ms = (self._clock() - read_at) * 1000
        if age_ms > max_age_ms:
            return SnapshotError("camera_offline" if online is False else "stale_frame")
        return Frame(image=image, read_at=read_at, age_ms=age_ms)

    def _open(self) -> cv2.VideoCapture:
        if self.source.startswith("/dev/"):
            # V4L2 does not take FFmpeg's timeout parameters; a USB camera answers or fails at once.
            return cv2.VideoCapture(self.source, cv2.CAP_V4L2)
        # Without these a silent camera blocks open() and read() for about 30 s.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_ms,
        ]  # fmt: skip
        return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)

    def _run(self) -> None:
        while not self._stopping.is_set():
            capture = self._open()
            frames = 0
            try:
                if not capture.isOpened():
                    self._state.report(False, "open_failed")
                else:
                    frames = self._read_until_failure(capture)
            finally:
                capture.release()
            if self._stopping.is_set():
                break
            if self._is_file:
                if frames:
                    continue  # the end of a video file: loop
                self._state.report(False, "no_frames")  # else a broken file would spin the CPU
            self._stopping.wait(self._backoff.next_delay())

    def _read_until_failure(self, capture: cv2.VideoCapture) -> int:
        """Read frames until the stream fails, ends or the source stops; returns how many."""
        frames = 0
        pace_s = 0.0
        if self._is_file:
            fps = capture.get(cv2.CAP_PROP_FPS)
            pace_s = 1 / (fps if 1 <= fps <= 240 else _FALLBACK_FPS)
        while not self._stopping.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                if not self._is_file:
                    self._state.report(False, "read_failed")
                return frames
            frames += 1
            read_at = self._clock()
            with self._lock:
                self._latest = (np.asarray(image, dtype=np.uint8), read_at)
            self._backoff.reset()
            self._state.report(True, "frames_arriving")
            if pace_s:
                self._stopping.wait(pace_s)
        return frames


class SnapshotUrlSource:
    """A camera's JPEG snapshot URL, fetched only when a frame is asked for.

    No thread and no decoding between requests. `start()` and `stop()` exist only so every
    source is driven the same way.
    """

    def __init__(
        self,
        url: str,
        *,
        on_state: StateCallback | None = None,
        timeout_ms: int = 5000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = url
        self._timeout_s = timeout_ms / 1000
        self._clock = clock
        self._state = _OnlineState(on_state)

    @property
    def online(self) -> bool | None:
        """The outcome of the last fetch; None before the first."""
        return self._state.online

    def start(self) -> None:
        """Nothing to start: the URL is fetched on demand."""

    def stop(self) -> None:
        """Nothing to stop."""

    def latest(self, max_age_ms: int) -> Frame | SnapshotError:
        """Fetch and decode one JPEG now; `max_age_ms` bounds how long the fetch may take."""
        started = self._clock()
        try:
            # The URL is the operator's own camera from the config file, http(s) only.
            with urllib.request.urlopen(self.url, timeout=self._timeout_s) as response:  # noqa: S310
                body = response.read()
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as error:
            # The reason goes into a journal event: a word, not the URL or its password.
            log.warning("camera snapshot fetch failed: %s", error)
            self._state.report(False, "fetch_failed")
            return SnapshotError("camera_offline")
        read_at = self._clock()
        self._state.report(True, "fetched")
        image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return SnapshotError("bad_image")
        if (read_at - started) * 1000 > max_age_ms:
            # The camera took longer to answer than a frame may be old: the door has moved on.
            return SnapshotError("stale_frame")
        age_ms = (self._clock() - read_at) * 1000
        return Frame(image=np.asarray(image, dtype=np.uint8), read_at=read_at, age_ms=age_ms)
