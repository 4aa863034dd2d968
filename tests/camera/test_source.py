"""FrameSource and SnapshotUrlSource against real streams: a video file, loopback cameras."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_sync.backoff import Backoff
from gateway.camera.source import (
    Frame,
    FrameSource,
    SnapshotError,
    SnapshotUrlSource,
    is_snapshot_url,
    open_source,
)
from tests.camera.servers import jpeg, mjpeg_camera, silent_listener, snapshot_camera

MAX_AGE_MS = 500


class StateLog:
    """Records on_state calls; `wait_for` returns once a given transition has been seen."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, str]] = []
        self._changed = threading.Condition()

    def __call__(self, online: bool, reason: str) -> None:
        with self._changed:
            self.calls.append((online, reason))
            self._changed.notify_all()

    def states(self) -> list[bool]:
        return [online for online, _ in self.calls]

    def wait_for(self, states: list[bool], timeout_s: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.states() == states, timeout_s), self.calls


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def reason(result: Frame | SnapshotError) -> str:
    return result.reason if isinstance(result, SnapshotError) else "frame"


def quick_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.2, floor=0.02)


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """Half a second of 160x120 MJPG video, each frame a different shade."""
    path = tmp_path / "entry.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (160, 120))
    assert writer.isOpened()
    for shade in range(0, 250, 25):
        writer.write(np.full((120, 160, 3), shade, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def state_log() -> StateLog:
    return StateLog()


@pytest.fixture
def started() -> Iterator[list[FrameSource]]:
    """Sources appended here are stopped after the test, even when it fails."""
    sources: list[FrameSource] = []
    yield sources
    for source in sources:
        source.stop()


def test_the_constructor_opens_nothing(state_log: StateLog) -> None:
    source = FrameSource("http://127.0.0.1:9/video.mjpg", on_state=state_log)
    assert reason(source.latest(MAX_AGE_MS)) == "no_frame_yet"
    assert source.online is None
    assert state_log.calls == []
    assert not [t for t in threading.enumerate() if t.name.startswith("camera-reader")]


def test_a_video_file_gives_fresh_frames_and_loops(
    video_file: Path, state_log: StateLog, started: list[FrameSource]
) -> None:
    source = FrameSource(str(video_file), on_state=state_log, backoff=quick_backoff())
    started.append(source)
    source.start()
    wait_until(lambda: isinstance(source.latest(MAX_AGE_MS), Frame))
    shades: set[int] = set()
    # The file lasts 0.5 s: frames still arriving three runs later means it looped.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        result = source.latest(MAX_AGE_MS)
        assert isinstance(result, Frame), result
        assert result.image.shape == (120, 160, 3)
        assert 0 <= result.age_ms <= MAX_AGE_MS
        shades.add(int(result.image.mean()))
        time.sleep(0.03)
    late = source.latest(MAX_AGE_MS)
    assert isinstance(late, Frame)
    assert len(shades) >= 5  # frames move on, not one frame repeated
    assert state_log.states() == [True]  # the end of the file is not an outage


def test_a_frame_older_than_the_maximum_age_is_never_given(video_file: Path) -> None:
    now = [1000.0]
    source = FrameSource(str(video_file), clock=lambda: now[0], backoff=quick_backoff())
    source.start()
    try:
        wait_until(lambda: isinstance(source.latest(MAX_AGE_MS), Frame))
    finally:
        source.stop()
    result = source.latest(MAX_AGE_MS)
    assert isinstance(result, Frame)
    assert result.age_ms == 0
    now[0] += MAX_AGE_MS / 1000 + 0.001
    assert reason(source.latest(MAX_AGE_MS)) == "stale_frame"
    assert isinstance(source.latest(MAX_AGE_MS * 2), Frame)


def test_an_mjpeg_stream_that_stalls_goes_stale_then_offline_then_back(
    state_log: StateLog, started: list[FrameSource]
) -> None:
    with mjpeg_camera() as camera:
        source = FrameSource(camera.url, on_state=state_log, open_timeout_ms=2000,
                             read_timeout_ms=1500, backoff=quick_backoff())  # fmt: skip
        started.append(source)
        source.start()
        state_log.wait_for([True])
        wait_until(lambda: isinstance(source.latest(MAX_AGE_MS), Frame))

        camera.stall()  # the connection stays open, nothing more is sent
        # The read timeout (1.5 s) is longer than the maximum age (0.5 s): stale first...
        wait_until(lambda: reason(source.latest(MAX_AGE_MS)) == "stale_frame")
        assert source.online is True
        # ...then offline once the read times out.
        state_log.wait_for([True, False])
        assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"

        camera.resume()
        state_log.wait_for([True, False, True])
        wait_until(lambda: isinstance(source.latest(MAX_AGE_MS), Frame))
        assert state_log.calls[1] == (False, "read_failed")


def test_a_dropped_mjpeg_connection_is_reopened(
    state_log: StateLog, started: list[FrameSource]
) -> None:
    with mjpeg_camera() as camera:
        source = FrameSource(camera.url, on_state=state_log, open_timeout_ms=2000,
                             read_timeout_ms=2000, backoff=quick_backoff())  # fmt: skip
        started.append(source)
        source.start()
        state_log.wait_for([True])
        camera.drop_connections()
        state_log.wait_for([True, False])
        camera.accept_again()
        state_log.wait_for([True, False, True])
        wait_until(lambda: isinstance(source.latest(MAX_AGE_MS), Frame))
        assert camera.connections >= 2


def test_a_camera_that_accepts_and_never_answers_times_out_as_offline(
    state_log: StateLog, started: list[FrameSource]
) -> None:
    with silent_listener() as port:
        source = FrameSource(f"http://127.0.0.1:{port}/video.mjpg", on_state=state_log,
                             open_timeout_ms=1000, read_timeout_ms=1000,
                             backoff=quick_backoff())  # fmt: skip
        started.append(source)
        begun = time.monotonic()
        source.start()
        state_log.wait_for([False], timeout_s=15)
        # Without the open timeout FFmpeg waits about 30 s.
        assert time.monotonic() - begun < 15
        assert state_log.calls == [(False, "open_failed")]
        assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"


def test_failed_opens_are_retried_with_backoff_and_reported_once(
    state_log: StateLog, started: list[FrameSource]
) -> None:
    backoff = quick_backoff()
    source = FrameSource("http://127.0.0.1:9/video.mjpg", on_state=state_log,
                         open_timeout_ms=500, backoff=backoff)  # fmt: skip
    started.append(source)
    source.start()
    wait_until(lambda: backoff.attempts >= 3)
    assert state_log.calls == [(False, "open_failed")]
    assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"


def test_a_snapshot_url_is_fetched_on_demand(state_log: StateLog) -> None:
    with snapshot_camera(jpeg(200)) as url:
        source = SnapshotUrlSource(url, on_state=state_log, timeout_ms=2000)
        source.start()
        result = source.latest(MAX_AGE_MS)
        source.stop()
    assert isinstance(result, Frame), result
    assert result.image.shape == (120, 160, 3)
    assert abs(int(result.image.mean()) - 200) <= 3
    assert 0 <= result.age_ms <= MAX_AGE_MS
    assert state_log.calls == [(True, "fetched")]


def test_a_snapshot_url_that_sends_no_jpeg_is_a_bad_image() -> None:
    with snapshot_camera(b"<html>login required</html>") as url:
        result = SnapshotUrlSource(url, timeout_ms=2000).latest(MAX_AGE_MS)
    assert reason(result) == "bad_image"


def test_an_unreachable_snapshot_url_is_offline_and_reported_once(state_log: StateLog) -> None:
    source = SnapshotUrlSource("http://127.0.0.1:9/snapshot.jpg", on_state=state_log,
                               timeout_ms=1000)  # fmt: skip
    assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"
    assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"
    assert state_log.states() == [False]


def test_a_silent_snapshot_url_times_out() -> None:
    with silent_listener() as port:
        source = SnapshotUrlSource(f"http://127.0.0.1:{port}/snapshot.jpg", timeout_ms=500)
        assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"


@pytest.mark.parametrize(
    ("source", "snapshot"),
    [
        ("http://192.168.1.64/ISAPI/Streaming/channels/101/picture/snapshot", True),
        ("http://192.168.1.64/cgi-bin/snapshot.cgi?channel=1", True),
        ("https://cam.example/still.JPG", True),
        ("http://cam.example/image.jpeg", True),
        ("http://192.168.1.64/video.mjpg", False),
        ("http://192.168.1.64:8080/?action=stream", False),
        ("rtsp://192.168.1.64:554/snapshot", False),
        ("/dev/video0", False),
        ("/srv/demo/snapshot.jpg", False),
    ],
)
def test_the_source_string_chooses_the_kind(source: str, snapshot: bool) -> None:
    assert is_snapshot_url(source) is snapshot
    kind = SnapshotUrlSource if snapshot else FrameSource
    assert isinstance(open_source(source), kind)


def test_a_video_file_without_frames_is_offline_not_a_busy_loop(
    tmp_path: Path, state_log: StateLog, started: list[FrameSource]
) -> None:
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + bytes(2000))
    backoff = quick_backoff()
    source = FrameSource(str(broken), on_state=state_log, backoff=backoff)
    started.append(source)
    source.start()
    wait_until(lambda: backoff.attempts >= 2)
    assert state_log.states() == [False]
    assert reason(source.latest(MAX_AGE_MS)) == "camera_offline"
