"""Entry snapshots on disk: encode a frame as JPEG, store it atomically, find it, expire it.

Snapshots live under `DATA_DIR/snapshots/YYYY-MM-DD/EVENT_ID.jpg` (the event's own date in UTC),
so retention deletes whole days and a police lookup by event id is one `stat` per candidate day.
A file appears complete or not at all: written to a temporary name in the same folder, fsynced,
renamed, and the folder fsynced, so a power cut never leaves half a JPEG that a police query
would hand out.

    jpeg = encode_jpeg(frame.image, quality=80, max_height=720)
    stored = SnapshotStore(data_dir).save(event_id, jpeg, taken=datetime.now(UTC))
    stored.sha256, stored.bytes      # what the event carries
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # OpenCV and NumPy (25 MiB resident) only where a frame is encoded
    import numpy as np
    from numpy.typing import NDArray

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SnapshotNotStored(Exception):
    """The snapshot was not written; `reason` is the event's `snapshot_error` word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """Where a snapshot was written and what the event says about it."""

    path: Path
    sha256: str
    bytes: int

    def reference(self) -> dict[str, object]:
        """The event's `snapshot` field (SPEC 6)."""
        return {"sha256": self.sha256, "bytes": self.bytes}


def encode_jpeg(image: NDArray[np.uint8], *, quality: int, max_height: int) -> bytes:
    """The frame as JPEG, scaled down (never up) to at most `max_height` pixels high."""
    import cv2
    height, width = image.shape[:2]
    if height > max_height:
        scaled_width = max(1, round(width * max_height / height))
        scaled = cv2.resize(image, (scaled_width, max_height), interpolation=cv2.INTER_AREA)
        ok, buffer = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SnapshotNotStored("encode_failed", f"OpenCV could not encode {width}x{height}")
    return bytes(buffer.tobytes())


class SnapshotStore:
    """The snapshot folder of one gateway."""

    def __init__(self, data_dir: Path, *, min_free_mb: int = 500) -> None:
        """Describe the store; nothing is created until the first `save`."""
        self.root = Path(data_dir) / "snapshots"
        self.min_free_mb = min_free_mb

    def save(self, event_id: str, jpeg: bytes, *, taken: datetime) -> StoredSnapshot:
        """Write `jpeg` as the snapshot of `event_id`, atomically; refuse when the disk is low.

        Raises SnapshotNotStored("disk_low" | "write_failed", ...): the journal needs the room
        more than the pictures do.
        """
        _check_event_id(event_id)
        folder = self.root / taken.astimezone(UTC).date().isoformat()
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            free_mb = shutil.disk_usage(folder).free / (1024 * 1024)
        except OSError as exc:
            raise SnapshotNotStored("write_failed", str(exc)) from None
        if free_mb - len(jpeg) / (1024 * 1024) < self.min_free_mb:
            raise SnapshotNotStored(
                "disk_low", f"{free_mb:.0f} MB free, {self.min_free_mb} MB kept for the journal"
            )
        final = folder / f"{event_id}.jpg"
        temporary = folder / f".{event_id}.{os.getpid()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(jpeg)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, final)
            _fsync_dir(folder)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise SnapshotNotStored("write_failed", str(exc)) from None
        return StoredSnapshot(final, hashlib.sha256(jpeg).hexdigest(), len(jpeg))

    def find(self, event_id: str, around: datetime | None = None) -> Path | None:
        """The snapshot file of `event_id`, or None; `around` (the event's time) saves a scan."""
        _check_event_id(event_id)
        name = f"{event_id}.jpg"
        if around is not None:
            day = around.astimezone(UTC).date()
            for candidate in (day, day - timedelta(days=1), day + timedelta(days=1)):
                path = self.root / candidate.isoformat() / name
                if path.is_file():
                    return path
        for folder in self._days():
            path = folder / name
            if path.is_file():
                return path
        return None

    def read(self, event_id: str, around: datetime | None = None) -> bytes | None:
        """The snapshot of `event_id`, or None when it is not kept (any more)."""
        path = self.find(event_id, around)
        try:
            return None if path is None else path.read_bytes()
        except OSError:
            return None

    def expire(self, *, before: date, held: frozenset[str] = frozenset()) -> int:
        """Delete snapshots of days before `before`, except event ids in `held`; return how many.

        `held` are snapshots under a police hold: they are kept whatever their age, and the
        day's folder with them.
        """
        removed = 0
        for folder in self._days():
            if date.fromisoformat(folder.name) >= before:
                continue
            for path in folder.iterdir():
                if path.suffix == ".jpg" and path.stem in held:
                    continue
                path.unlink(missing_ok=True)
                removed += path.suffix == ".jpg"
            with contextlib.suppress(OSError):  # held snapshots remain in it
                folder.rmdir()
        return removed

    def free_mb(self) -> float:
        """Free space on the snapshot disk, in MB."""
        folder = self.root if self.root.is_dir() else self.root.parent
        return shutil.disk_usage(folder).free / (1024 * 1024)

    def make_room(self, *, held: frozenset[str] = frozenset(), keep_from: date) -> int:
        """Below the free-space floor, delete whole days, oldest first, before `keep_from`.

        The journal needs the room more than old pictures do; held snapshots are kept.
        Returns how many snapshots were deleted.
        """
        removed = 0
        for folder in self._days():
            if self.free_mb() >= self.min_free_mb or date.fromisoformat(folder.name) >= keep_from:
                break
            removed += self.expire(before=date.fromisoformat(folder.name) + timedelta(days=1),
                                   held=held)  # fmt: skip
        return removed

    def _days(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and _DAY.match(p.name))


def _check_event_id(event_id: str) -> None:
    # The id becomes a file name: only a canonical UUID may, never a path.
    try:
        if str(uuid.UUID(event_id)) == event_id:
            return
    except ValueError:
        pass
    raise ValueError(f"not an event id: {event_id!r}")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
