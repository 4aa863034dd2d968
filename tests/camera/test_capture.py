"""Camera: frames from a real source become snapshots recorded in held journal events."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from gateway.camera.capture import Camera, CaptureSettings
from gateway.camera.snapshots import SnapshotStore
from gateway.camera.source import Frame, FrameSource, SnapshotError, SnapshotUrlSource
from gateway.store import JournalEntry, Store

from .servers import jpeg, snapshot_camera

GATEWAY_ID = "gw-test-0001"
TODAY = date(2026, 11, 27)


def access_event() -> dict[str, Any]:
    return {
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 1},
        "reason": "tenant_card", "snapshot": None, "snapshot_error": "interrupted",
    }  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data", GATEWAY_ID) as opened:
        yield opened


@pytest.fixture
def hd_video(tmp_path: Path) -> Path:
    """A 1280x720 MJPG AVI at 10 fps with a different picture in every frame."""
    path = tmp_path / "entrance.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (1280, 720))
    rng = np.random.default_rng(1)
    for n in range(20):
        frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
        cv2.putText(frame, str(n), (50, 400), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 255, 255), 12)
        writer.write(frame)
    writer.release()
    return path


class FixedSource:
    """A source that answers `latest()` with what it is given, after `delay` (a slow camera)."""

    def __init__(self, result: Frame | SnapshotError, delay: threading.Event | None = None):
        self.result = result
        self.delay = delay
        self.online: bool | None = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        if self.delay is not None:
            self.delay.set()

    def latest(self, max_age_ms: int) -> Frame | SnapshotError:
        if self.delay is not None:
            self.delay.wait(30)
        return self.result


def make_camera(store: Store, source: Any, tmp_path: Path, **settings: Any) -> Camera:
    min_free_mb = settings.pop("min_free_mb", 0)
    camera = Camera(source, store, SnapshotStore(tmp_path / "data", min_free_mb=min_free_mb),
                    CaptureSettings(**settings), today=lambda: TODAY)  # fmt: skip
    camera.start()
    return camera


def capture(store: Store, camera: Camera) -> JournalEntry:
    entry = store.append_event(access_event(), capture=True)
    return camera.request(entry).result()


def stored_file(tmp_path: Path, event_id: str) -> Path:
    [path] = (tmp_path / "data" / "snapshots").glob(f"*/{event_id}.jpg")
    return path


def test_a_video_file_frame_is_stored_scaled_and_recorded(
    store: Store, hd_video: Path, tmp_path: Path
) -> None:
    source = FrameSource(str(hd_video))
    camera = make_camera(store, source, tmp_path, max_height=480, jpeg_quality=70)
    try:
        assert _wait(lambda: isinstance(source.latest(1000), Frame))
        final = capture(store, camera)
    finally:
        camera.stop()
    snapshot = final.body["snapshot"]
    assert snapshot is not None, final.body
    path = stored_file(tmp_path, final.event_id)
    data = path.read_bytes()
    assert snapshot == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (480, 853, 3)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # Filed under the event's own day (UTC), so retention and police lookups find it.
    assert path.parent.name == datetime.fromisoformat(final.body["ts"]).astimezone(UTC).date(
        ).isoformat()  # fmt: skip
    assert camera.outcomes == {"stored": 1}
    [timing] = camera.timings
    assert timing.frame_age_ms <= 1000
    assert timing.jpeg_bytes == len(data)


def test_a_frame_that_is_too_old_is_never_attached(store: Store, tmp_path: Path) -> None:
    camera = make_camera(store, FixedSource(SnapshotError("stale_frame")), tmp_path)
    try:
        final = capture(store, camera)
    finally:
        camera.stop()
    assert final.body["snapshot"] is None
    assert final.body["snapshot_error"] == "stale_frame"
    assert not (tmp_path / "data" / "snapshots").exists()


def test_a_camera_known_to_be_down_is_recorded_at_once(store: Store, tmp_path: Path) -> None:
    source = FrameSource("http://127.0.0.1:9/video.mjpg")  # never started: as if offline
    source._state.online = False
    camera = Camera(source, store, SnapshotStore(tmp_path), CaptureSettings())
    assert camera.unavailable() == "camera_offline"


def test_a_capture_past_its_deadline_goes_up_as_timeout_and_leaves_no_file(
    store: Store, tmp_path: Path
) -> None:
    release = threading.Event()
    frame = Frame(image=np.zeros((120, 160, 3), np.uint8), read_at=0.0, age_ms=5.0)
    camera = make_camera(store, FixedSource(frame, delay=release), tmp_path, max_frame_age_ms=100)
    try:
        entry = store.append_event(access_event(), capture=True)
        final = camera.request(entry).result()  # waits out the 2 s deadline
        assert final.body["snapshot_error"] == "timeout"
        assert store.captures_running() == 0
        assert [seq for seq, _ in store.pending_bodies()] == [entry.seq]
        release.set()  # the camera answers after all: too late, nothing may point at it
    finally:
        camera.stop()  # the worker finishes that capture first
    assert camera.outcomes == {"timeout": 1}
    assert list((tmp_path / "data" / "snapshots").glob("*/*.jpg")) == []


def test_a_snapshot_url_is_fetched_for_the_event(store: Store, tmp_path: Path) -> None:
    with snapshot_camera(jpeg(90, 640, 480)) as url:
        camera = make_camera(store, SnapshotUrlSource(url), tmp_path)
        try:
            final = capture(store, camera)
        finally:
            camera.stop()
    assert final.body["snapshot"]["bytes"] > 0
    assert stored_file(tmp_path, final.event_id).read_bytes()[:2] == b"\xff\xd8"


def test_a_low_disk_keeps_the_event_and_says_why(store: Store, tmp_path: Path) -> None:
    frame = Frame(image=np.zeros((120, 160, 3), np.uint8), read_at=0.0, age_ms=5.0)
    camera = make_camera(store, FixedSource(frame), tmp_path, min_free_mb=10**9)
    try:
        final = capture(store, camera)
    finally:
        camera.stop()
    assert final.body["snapshot_error"] == "disk_low"


def _day_with(root: Path, day: date, event_ids: list[str]) -> None:
    folder = root / "snapshots" / day.isoformat()
    folder.mkdir(parents=True)
    for event_id in event_ids:
        (folder / f"{event_id}.jpg").write_bytes(b"\xff\xd8" + os.urandom(64))


IDS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(6)]


def test_retention_deletes_old_days_and_keeps_police_holds(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "data"
    _day_with(root, TODAY - timedelta(days=40), IDS[0:2])
    _day_with(root, TODAY - timedelta(days=29), IDS[2:3])
    _day_with(root, TODAY, IDS[3:4])
    store.hold_snapshot(IDS[1], "案件 2026-0042", "officer.li")
    camera = Camera(FixedSource(SnapshotError("disabled")), store, SnapshotStore(root),
                    CaptureSettings(retention_days=30), today=lambda: TODAY)  # fmt: skip
    assert camera.housekeeping() == 1
    left = sorted(p.stem for p in root.glob("snapshots/*/*.jpg"))
    assert left == sorted(IDS[1:4])


def test_below_the_disk_floor_the_oldest_days_go_first(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for age, ids in ((3, IDS[0:2]), (2, IDS[2:4]), (0, IDS[4:6])):
        _day_with(root, TODAY - timedelta(days=age), ids)
    store.hold_snapshot(IDS[0], "案件 2026-0042", "officer.li")
    snapshots = SnapshotStore(root, min_free_mb=10**9)
    # Free space never reaches the floor here: everything but today's and the held one goes.
    camera = Camera(FixedSource(SnapshotError("disabled")), store, snapshots,
                    CaptureSettings(retention_days=30), today=lambda: TODAY)  # fmt: skip
    assert camera.housekeeping() == 3
    assert sorted(p.stem for p in root.glob("snapshots/*/*.jpg")) == [IDS[0], IDS[4], IDS[5]]


def test_the_floor_stops_deleting_once_there_is_room(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for age, ids in ((3, IDS[0:2]), (2, IDS[2:4])):
        _day_with(root, TODAY - timedelta(days=age), ids)
    snapshots = SnapshotStore(root, min_free_mb=0)
    assert snapshots.make_room(keep_from=TODAY) == 0
    assert len(list(root.glob("snapshots/*/*.jpg"))) == 4


def _wait(condition: Any, timeout: float = 10.0) -> bool:
    deadline = datetime.now() + timedelta(seconds=timeout)
    while datetime.now() < deadline:
        if condition():
            return True
        threading.Event().wait(0.02)
    return bool(condition())
