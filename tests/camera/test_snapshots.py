"""Snapshots on disk: JPEG encoding, atomic writes, lookup, retention with police holds."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.camera.snapshots import SnapshotNotStored, SnapshotStore, encode_jpeg

TAKEN = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)


def scene(height: int = 1080, width: int = 1920) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 200, 255), -1)
    return image


def test_frames_are_scaled_down_to_the_maximum_height_never_up() -> None:
    big = cv2.imdecode(np.frombuffer(encode_jpeg(scene(), quality=80, max_height=720), np.uint8),
                       cv2.IMREAD_COLOR)  # fmt: skip
    assert big is not None
    assert big.shape[:2] == (720, 1280)
    small = cv2.imdecode(
        np.frombuffer(encode_jpeg(scene(240, 320), quality=80, max_height=720), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert small is not None
    assert small.shape[:2] == (240, 320)


def test_quality_changes_the_size() -> None:
    noisy = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert len(encode_jpeg(noisy, quality=30, max_height=720)) < len(
        encode_jpeg(noisy, quality=95, max_height=720)
    )


def test_save_is_atomic_and_matches_the_reference(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, min_free_mb=0)
    jpeg = encode_jpeg(scene(240, 320), quality=80, max_height=720)
    event_id = str(uuid.uuid4())
    stored = store.save(event_id, jpeg, taken=TAKEN)
    assert stored.path == tmp_path / "snapshots" / "2026-11-26" / f"{event_id}.jpg"
    assert stored.path.read_bytes() == jpeg
    assert stored.reference() == {"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg)}
    assert stored.path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in stored.path.parent.iterdir()] == [f"{event_id}.jpg"]  # no temp left
    assert store.find(event_id, around=TAKEN) == stored.path
    assert store.find(event_id) == stored.path
    assert store.find(str(uuid.uuid4())) is None


def test_a_low_disk_refuses_the_snapshot_not_the_event(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, min_free_mb=10**9)  # more than any disk has
    with pytest.raises(SnapshotNotStored) as refused:
        store.save(str(uuid.uuid4()), b"\xff\xd8jpeg", taken=TAKEN)
    assert refused.value.reason == "disk_low"


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, min_free_mb=0)
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "2026-11-26").write_text("a file where the day folder should be")
    with pytest.raises(SnapshotNotStored) as failed:
        store.save(str(uuid.uuid4()), b"\xff\xd8jpeg", taken=TAKEN)
    assert failed.value.reason == "write_failed"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "x", str(uuid.uuid4()).upper(), ""])
def test_only_event_ids_become_file_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        SnapshotStore(tmp_path, min_free_mb=0).save(bad, b"jpeg", taken=TAKEN)


def test_retention_deletes_old_days_but_keeps_police_holds(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, min_free_mb=0)
    ids = {day: [str(uuid.uuid4()) for _ in range(3)] for day in (20, 25, 26)}
    for day, events in ids.items():
        for event_id in events:
            store.save(event_id, b"\xff\xd8jpeg", taken=datetime(2026, 11, day, 12, tzinfo=UTC))
    held = frozenset({ids[20][1]})
    assert store.expire(before=date(2026, 11, 26), held=held) == 5
    left = {p.stem for p in (tmp_path / "snapshots").rglob("*.jpg")}
    assert left == {ids[20][1], *ids[26]}
    assert not (tmp_path / "snapshots" / "2026-11-25").exists()
    assert store.find(ids[20][1]) is not None
