"""The runtime folder the parts share: their sockets and their health reports.

Each part of a running gateway (door, camera, uplink, web) is a process of its own; they meet
only in the store (SQLite) and here, on a tmpfs (`/run/rental-gateway` under systemd, its
`RuntimeDirectory=`). Nothing here survives a reboot, and nothing needs to.

    runtime = Runtime.for_config(config)
    runtime.write_health("door", {"status": "ok", ...})
    runtime.read_health("door")            # None when missing or older than STALE_SECONDS
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.store import Yielding

# A part writes its health every second; a report older than this is a part that hangs.
STALE_SECONDS = 10.0
# The door part's niceness (its unit's Nice=).
DOOR_NICE = -5
# How the other parts' store writers give way to the door's journal commits (see Yielding):
# they take the door's niceness while they hold the write lock the door may be waiting for,
# and pace their disk writes. A door commit is an fsync, which returns when the device has
# written everyone's writes: here another process writing 16 MB/s left it at p99 9 ms, and one
# writing as fast as it could at 167 ms (bench/commit_contention.py, docs/benchmarks.md).
BEHIND_DOOR = Yielding(lock_nice=DOOR_NICE, disk_bytes_per_s=8e6, disk_burst_bytes=4 << 20)
# sun_path holds 108 bytes on Linux.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True, slots=True)
class Runtime:
    """Paths in the runtime folder."""

    path: Path

    @classmethod
    def for_config(cls, config: Config) -> Runtime:
        """`$RUNTIME_DIRECTORY` under systemd, else `data_dir/run` (or a short folder in /tmp
        named after data_dir when that path is too long for a Unix socket); made 0700."""
        given = os.environ.get("RUNTIME_DIRECTORY")
        if given:
            path = Path(given.split(":")[0])
        else:
            path = Path(config.gateway.data_dir) / "run"
            if len(str(path / "camera.sock")) > _MAX_SOCKET_PATH:
                digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
                path = Path(tempfile.gettempdir()) / f"rental-gateway-{digest}"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(path)

    @property
    def door_socket(self) -> Path:
        """Where the door part takes signed door commands (unlock, lockdown)."""
        return self.path / "door.sock"

    @property
    def camera_socket(self) -> Path:
        """Where the camera part takes capture requests (datagrams)."""
        return self.path / "camera.sock"

    @property
    def web_socket(self) -> Path:
        """Where the web part's application server listens behind the edge."""
        return self.path / "web.sock"

    def health_path(self, part: str) -> Path:
        return self.path / f"{part}.health.json"

    def write_health(self, part: str, report: dict[str, Any]) -> None:
        """Replace `part`'s health report atomically (a tmpfs: no fsync)."""
        target = self.health_path(part)
        body = json.dumps({**report, "pid": os.getpid(), "written": time.time()})
        temp = target.with_suffix(".tmp")
        temp.write_text(body)
        temp.replace(target)

    def read_health(
        self, part: str, *, stale_seconds: float = STALE_SECONDS
    ) -> dict[str, Any] | None:
        """`part`'s last report; None when there is none or it is stale (the part is down or
        hangs)."""
        try:
            report = json.loads(self.health_path(part).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(report, dict) or time.time() - report.get("written", 0) > stale_seconds:
            return None
        return report

    def clear_health(self, part: str) -> None:
        """Remove `part`'s report: it stopped."""
        self.health_path(part).unlink(missing_ok=True)
