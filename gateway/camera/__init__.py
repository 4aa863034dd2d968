"""The entry camera: frames from a stream or a snapshot URL, kept fresh for access events."""

from gateway.camera.source import (
    CameraSource,
    Frame,
    FrameSource,
    SnapshotError,
    SnapshotErrorReason,
    SnapshotUrlSource,
    is_snapshot_url,
    open_source,
)

__all__ = [
    "CameraSource",
    "Frame",
    "FrameSource",
    "SnapshotError",
    "SnapshotErrorReason",
    "SnapshotUrlSource",
    "is_snapshot_url",
    "open_source",
]
