"""What the web layer asks of the running gateway, over a real store: its store, its health,
its snapshot files. Used by the web tests and bench/web.py."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.camera.snapshots import SnapshotStore
from gateway.store import Store

BUILDING_ZONE = ZoneInfo("Asia/Shanghai")


class BuildingGateway:
    """A gateway with one healthy door, as far as the web layer can tell."""

    snapshots: SnapshotStore

    def __init__(self, store: Store, data_dir: Path, zone: tzinfo = BUILDING_ZONE) -> None:
        self.store: Store | None = store
        self.snapshots = SnapshotStore(data_dir, min_free_mb=0)
        self.zone = zone
        self.doors: dict[str, str | None] = {"main": None, "garage": "车库门"}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "problems": [], "uptime_seconds": 1.0, "clock_synced": True,
                "doors": {"main": {"reader_online": True, "secure_channel": True,
                                   "line_errors": 0}},
                "uplink": None, "camera": None}  # fmt: skip
