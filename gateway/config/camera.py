"""[camera]: the entry camera whose frame is kept with every access event."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from gateway.config.base import Section
from gateway.config.errors import invalid
from gateway.config.files import check_readable, resolve_path

CameraSourceKind = Literal["rtsp", "http", "device", "file"]


class CameraConfig(Section):
    """The entry camera whose frame is kept with every access event."""

    source: str = Field(
        title="Video source",
        description="rtsp:// stream, http(s):// MJPEG stream or JPEG snapshot URL, a /dev/video"
        " device, or a video file (relative to the config file's folder).",
        examples=["rtsp://192.168.1.64:554/Streaming/Channels/102", "/dev/video0"],
    )
    max_frame_age_ms: int = Field(
        default=1500,
        ge=100,
        le=60000,
        title="Maximum frame age",
        description="A frame older than this is not used as an entry snapshot.",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        title="Snapshot retention",
        description="Days snapshots are kept before they are deleted.",
    )
    jpeg_quality: int = Field(
        default=80, ge=1, le=100, title="JPEG quality", description="Quality of stored snapshots."
    )
    max_height: int = Field(
        default=720,
        ge=120,
        le=4320,
        title="Maximum height",
        description="Taller frames are scaled down to this many pixels before they are stored.",
    )
    min_free_mb: int = Field(
        default=500,
        ge=0,
        title="Minimum free space",
        description="Snapshots are not stored while less than this many MB are free on the"
        " data disk, so the event journal never runs out of room.",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str, info: ValidationInfo) -> str:
        if "…" in value or not value.strip():
            raise invalid("is a placeholder; give the camera's stream URL, device or video file")
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme in ("rtsp", "rtsps", "http", "https"):
            if not urlsplit(value).hostname:
                # Not the value itself: what is left of it may be the camera's password.
                raise invalid(f'the {scheme}:// URL has no host; write e.g.'
                              ' "rtsp://user:password@192.168.1.64:554/…"')  # fmt: skip
            return value
        if scheme:
            raise invalid(
                f'"{scheme}://" is not supported;'
                " use rtsp://, http(s)://, /dev/videoN or a video file"
            )
        if value.startswith("/dev/"):
            return value  # a USB camera may be unplugged while the config is checked
        path = resolve_path(value, info)
        check_readable(path)  # a video file may be large: its first byte proves access
        return str(path)

    @property
    def source_kind(self) -> CameraSourceKind:
        """What `source` names: an RTSP stream, an HTTP URL, a device, or a video file."""
        scheme = self.source.split("://", 1)[0].lower() if "://" in self.source else ""
        if scheme.startswith("rtsp"):
            return "rtsp"
        if scheme.startswith("http"):
            return "http"
        return "device" if self.source.startswith("/dev/") else "file"
