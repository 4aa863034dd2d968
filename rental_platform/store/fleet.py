"""Every gateway's health, for the fleet page and `GET /api/v1/gateways` (SPEC 8).

Two sources, both kept by ingest:

- the retained status (`status`: state, when it last changed, queue depth, versions; SPEC 3),
  stored as it comes;
- the gateway's parts as its events last told (`gateway_parts`, written by `note_parts` in the
  batch's transaction): each reader (`reader.online` / `reader.offline` of its door), the
  camera (an entry's `snapshot`, or the `snapshot_error` that says the camera failed), and the
  clock (every event's `clock_synced`). The event with the highest seq wins, so events stored
  out of order never bring back an older word.

Reading them is one query over `gateways`, `status` and `gateway_parts`, never over `events`:
the fleet page costs the same with 180 days of events as with none.

    rows = fleet(db, area=("440305", "001"), now=time.time(), silent_after=3600)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .database import Database
from .messages import Event

# An entry's snapshot_error that says the camera itself failed (the gateway's words,
# gateway/parts/door.py); "disabled" (no camera), "interrupted" (a restart) and the disk's
# errors say nothing about the camera.
CAMERA_FAILURES = frozenset(
    {"camera_offline", "stale_frame", "timeout", "no_frame_yet", "bad_image", "encode_failed"}
)
READER = "reader:"

Part = tuple[str, str, bool, str | None, int, str]  # gateway, part, ok, detail, seq, ts


def parts_of(event: Event) -> list[Part]:
    """What one event says about its gateway's parts."""
    body, said = event.body, list[Part]()
    ts = str(body.get("ts"))
    synced = body.get("clock_synced")
    if isinstance(synced, bool):
        said.append((event.gateway_id, "clock", synced, None, event.seq, ts))
    if event.type in ("reader.online", "reader.offline") and event.door:
        said.append(
            (
                event.gateway_id,
                READER + event.door,
                event.type == "reader.online",
                None,
                event.seq,
                ts,
            )
        )
    if event.type.startswith("access.") and "snapshot" in body:
        error = body.get("snapshot_error")
        if body["snapshot"] is not None:
            said.append((event.gateway_id, "camera", True, None, event.seq, ts))
        elif error in CAMERA_FAILURES:
            said.append((event.gateway_id, "camera", False, str(error), event.seq, ts))
    return said


def note_parts(db: Database, events: Iterable[Event]) -> None:
    """Record what these events say about their gateways' parts (inside the batch)."""
    latest: dict[tuple[str, str], Part] = {}
    for event in events:
        for part in parts_of(event):
            key = (part[0], part[1])
            if key not in latest or latest[key][4] < part[4]:
                latest[key] = part
    db.executemany(
        "INSERT INTO gateway_parts (gateway_id, part, ok, detail, seq, ts)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, part) DO UPDATE SET"
        " ok = excluded.ok, detail = excluded.detail, seq = excluded.seq, ts = excluded.ts"
        " WHERE gateway_parts.seq < excluded.seq",
        [latest[key] for key in sorted(latest)],
    )


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    """One gateway as the fleet page shows it; times are Unix seconds."""

    gateway_id: str
    building: str | None  # its code, 440305001002-0042
    state: str  # online / offline
    since: float | None  # in this state since (the platform's clock)
    queue_depth: int | None
    registry_version: int | str | None
    version: str | None
    clock_synced: bool | None
    last_heard: float | None  # its last status or event
    silent: bool  # nothing heard for longer than the threshold
    offset: str | None  # the building's UTC offset, from the gateway's own ts: "+08:00"
    readers_offline: list[str] = field(default_factory=list)  # doors
    camera_ok: bool | None = None  # None: no entry has told yet
    camera_error: str | None = None  # the camera's last failure, while it lasts
    status_ts: str | None = None  # the status message's own ts


_SELECT = (
    "SELECT g.gateway_id, g.building_code, g.last_event_at, s.state, s.since, s.received_at,"
    " s.body FROM gateways g LEFT JOIN status s ON s.gateway_id = g.gateway_id"
)


AREA_COLUMNS = ("g.district", "g.street", "g.community", "g.building")


def fleet(
    db: Database,
    *,
    area: tuple[str, ...] = (),
    gateway_id: str | None = None,
    now: float,
    silent_after: float,
) -> list[GatewayHealth]:
    """Every gateway in `area` (its building code's parts: district, street[, community]), or
    the one `gateway_id`, by building code."""
    where = [f"{column} = ?" for column in AREA_COLUMNS[: len(area)]]
    params: list[Any] = list(area)
    if gateway_id is not None:
        where.append("g.gateway_id = ?")
        params.append(gateway_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.execute(
        f"{_SELECT}{clause} ORDER BY g.building_code, g.gateway_id", params
    ).fetchall()
    parts: dict[str, list[tuple[str, bool, str | None, str]]] = {}
    join = f" JOIN gateways g ON g.gateway_id = p.gateway_id{clause}"
    for gid, part, ok, detail, ts in db.execute(
        f"SELECT p.gateway_id, p.part, p.ok, p.detail, p.ts FROM gateway_parts p{join}"
        " ORDER BY p.gateway_id, p.part",
        params,
    ).fetchall():
        parts.setdefault(gid, []).append((part, bool(ok), detail, ts))
    return [_health(row, parts.get(row[0], []), now, silent_after) for row in rows]


def _health(
    row: tuple[Any, ...],
    parts: list[tuple[str, bool, str | None, str]],
    now: float,
    silent_after: float,
) -> GatewayHealth:
    gid, building, last_event, state, since, status_at, text = row
    status: dict[str, Any] = json.loads(text) if text else {}
    heard = max((t for t in (last_event, status_at) if t is not None), default=None)
    said = {part: (ok, detail, ts) for part, ok, detail, ts in parts}
    clock = status.get("clock_synced")
    if not isinstance(clock, bool):
        clock = said["clock"][0] if "clock" in said else None
    camera = said.get("camera")
    depth, version = status.get("queue_depth"), status.get("version")
    registry = status.get("registry_version")
    return GatewayHealth(
        gateway_id=gid,
        building=building,
        # No status yet: what its events say, by the same threshold.
        state=state
        or ("online" if heard is not None and now - heard <= silent_after else "offline"),
        since=since,
        queue_depth=depth if type(depth) is int else None,
        registry_version=registry if isinstance(registry, int | str) else None,
        version=version if isinstance(version, str) else None,
        clock_synced=clock,
        last_heard=heard,
        silent=heard is None or now - heard > silent_after,
        offset=_offset(status.get("ts"))
        or next((_offset(ts) for *_, ts in said.values() if _offset(ts)), None),
        readers_offline=[
            part.removeprefix(READER)
            for part, (ok, _d, _t) in said.items()
            if part.startswith(READER) and not ok
        ],
        camera_ok=None if camera is None else camera[0],
        camera_error=None if camera is None or camera[0] else camera[1],
        status_ts=status.get("ts") if isinstance(status.get("ts"), str) else None,
    )


def _offset(ts: Any) -> str | None:
    """The UTC offset an RFC 3339 time carries ("+08:00"), or None."""
    if not isinstance(ts, str) or len(ts) < 20:
        return None
    tail = ts[-6:]
    if ts.endswith("Z"):
        return "+00:00"
    if tail[0] in "+-" and tail[3] == ":" and tail[1:3].isdigit() and tail[4:].isdigit():
        return tail
    return None
