"""Each gateway's row: its ack watermark, floor, counters, building, and open conflicts.

The watermark is computed in the database, so any instance may ack any gateway. A batch locks
the rows of the gateways it touches (`lock`, in gateway_id order so two batches never wait on
each other in a circle) before it stores anything: an instance storing seq 2 and another
storing seq 1 of the same gateway therefore take turns, and the later one sees both and moves
the watermark past the gap. SQLite needs no row lock (`BEGIN IMMEDIATE` is one writer at a
time); the same SQL runs there.

`ahead` holds the seqs stored above the watermark (arrived out of order); advancing moves the
watermark over the run that continues it and deletes that run from `ahead`, so the table stays
as small as the gaps in flight. A seq at or below the watermark is stored, or was stored
centrally before (the floor), by definition: it is never stored again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .database import Database

BUILDING_CODE = re.compile(r"(\d{6})(\d{3})(\d{3})-(\d{4})")


@dataclass(frozen=True, slots=True)
class GatewayRow:
    """A gateway's row as a batch found it (locked until the batch commits)."""

    gateway_id: str
    watermark: int
    floor: int
    hold_below: int | None
    parts: tuple[str | None, str | None, str | None, str | None]  # district … building


def building_parts(code: str) -> tuple[str, str, str, str] | None:
    """District (6 digits), street (3), community (3), building (4) of `440305001002-0042`."""
    match = BUILDING_CODE.fullmatch(code)
    return None if match is None else (match[1], match[2], match[3], match[4])


def lock(db: Database, gateway_ids: Sequence[str]) -> dict[str, GatewayRow]:
    """Create the missing rows, lock them all for this transaction, return them."""
    ordered = sorted(set(gateway_ids))
    if not ordered:
        return {}
    source, params = db.rows_of([(g,) for g in ordered], ["text"])
    db.execute(
        f"INSERT INTO gateways (gateway_id) SELECT c0 FROM ({source}) AS s ORDER BY c0"
        " ON CONFLICT (gateway_id) DO NOTHING",
        params,
    )
    rows = db.execute(
        "SELECT gateway_id, watermark, floor, hold_below, district, street, community, building"
        f" FROM gateways WHERE {db.any_of('gateway_id')} ORDER BY gateway_id"
        + (" FOR UPDATE" if db.postgres else ""),
        (db.list_param(ordered),),
    ).fetchall()
    return {
        r[0]: GatewayRow(r[0], int(r[1]), int(r[2]), r[3], (r[4], r[5], r[6], r[7])) for r in rows
    }


def raise_floors(db: Database, floors: dict[str, int]) -> None:
    """Remember each gateway's highest `acked` property (never lowered)."""
    db.executemany(
        "UPDATE gateways SET floor = ? WHERE gateway_id = ? AND floor < ?",
        [(f, g, f) for g, f in sorted(floors.items())],
    )


def add_counts(
    db: Database, counts: dict[str, tuple[int, int, int]], heard: Iterable[str], now: float
) -> None:
    """Add (duplicates, rejected, conflicts) to each gateway; mark those heard from now."""
    heard = set(heard)
    db.executemany(
        "UPDATE gateways SET duplicates = duplicates + ?, rejected = rejected + ?,"
        " conflicts = conflicts + ?, last_event_at = coalesce(?, last_event_at)"
        " WHERE gateway_id = ?",
        [(d, r, c, now if g in heard else None, g) for g, (d, r, c) in sorted(counts.items())],
    )


def hold_at(db: Database, holds: dict[str, int]) -> None:
    """No ack at or past these seqs: each is the seq of a conflict a person must look at."""
    db.executemany(
        "UPDATE gateways SET hold_below = ? WHERE gateway_id = ?"
        " AND (hold_below IS NULL OR hold_below > ?)",
        [(seq, g, seq) for g, seq in sorted(holds.items())],
    )


def advance(db: Database, gateway_ids: Sequence[str]) -> dict[str, int]:
    """Move each gateway's watermark over the stored seqs that continue it; return the acks.

    The ack is the watermark, or just below the first open conflict (see `ack_value`).
    """
    ids = db.list_param(sorted(set(gateway_ids)))
    mark = "(CASE WHEN floor > watermark THEN floor ELSE watermark END)"
    db.execute(
        f"UPDATE gateways SET watermark = {mark} WHERE {db.any_of('gateway_id')}"
        " AND floor > watermark",
        (ids,),
    )
    _drop_passed(db, ids)
    # In seq order, the run continuing the watermark is exactly the rows whose seq minus
    # their rank equals it; the first gap breaks the equality for every row after it.
    db.execute(
        "UPDATE gateways SET watermark = run.top FROM ("
        " SELECT r.gateway_id, max(r.seq) AS top FROM ("
        "  SELECT a.gateway_id, a.seq,"
        "   a.seq - row_number() OVER (PARTITION BY a.gateway_id ORDER BY a.seq) AS base"
        f"  FROM ahead a WHERE {db.any_of('a.gateway_id')}) AS r"
        " JOIN gateways g ON g.gateway_id = r.gateway_id AND r.base = g.watermark"
        " GROUP BY r.gateway_id) AS run"
        " WHERE gateways.gateway_id = run.gateway_id",
        (ids,),
    )
    _drop_passed(db, ids)
    rows = db.execute(
        f"SELECT gateway_id, watermark, hold_below FROM gateways WHERE {db.any_of('gateway_id')}",
        (ids,),
    ).fetchall()
    return {g: ack_value(int(w), h) for g, w, h in rows}


def _drop_passed(db: Database, ids: Any) -> None:
    db.execute(
        f"DELETE FROM ahead WHERE {db.any_of('gateway_id')} AND seq <="
        " (SELECT g.watermark FROM gateways g WHERE g.gateway_id = ahead.gateway_id)",
        (ids,),
    )


def ack_value(watermark: int, hold_below: int | None) -> int:
    """What `P/ack` may say: the watermark, but never at or past an open conflict."""
    return watermark if hold_below is None else min(watermark, hold_below - 1)


def set_building(db: Database, gateway_id: str, code: str) -> None:
    """Record the gateway's building code (from its status or the city's configuration), and
    give its events stored without one the code's parts, for search."""
    parts = building_parts(code)
    if parts is None:
        raise ValueError(f"{code!r} is not a building code like 440305001002-0042")
    with db.transaction():
        db.execute(
            "INSERT INTO gateways (gateway_id) VALUES (?) ON CONFLICT DO NOTHING", (gateway_id,)
        )
        changed = db.execute(
            "UPDATE gateways SET building_code = ?, district = ?, street = ?, community = ?,"
            " building = ? WHERE gateway_id = ? AND building_code IS DISTINCT FROM ?",
            (code, *parts, gateway_id, code),
        ).rowcount
        if changed:
            db.execute(
                "UPDATE events SET district = ?, street = ?, community = ?, building = ?"
                " WHERE gateway_id = ? AND district IS NULL",
                (*parts, gateway_id),
            )


def resolve_conflict(db: Database, gateway_id: str, seq: int, now: float) -> None:
    """A person looked at the conflict at `seq`: the ack may pass it (up to the next one)."""
    with db.transaction():
        db.execute(
            "UPDATE conflicts SET resolved_at = ? WHERE gateway_id = ? AND seq = ?"
            " AND resolved_at IS NULL",
            (now, gateway_id, seq),
        )
        db.execute(
            "UPDATE gateways SET hold_below = (SELECT min(seq) FROM conflicts c"
            " WHERE c.gateway_id = gateways.gateway_id AND c.resolved_at IS NULL)"
            " WHERE gateway_id = ?",
            (gateway_id,),
        )


def gateway_row(db: Database, gateway_id: str) -> dict[str, Any]:
    """The gateway's watermark, floor, counters and open conflict (zeros when unknown)."""
    row = db.execute(
        "SELECT watermark, floor, duplicates, rejected, conflicts, hold_below, building_code"
        " FROM gateways WHERE gateway_id = ?",
        (gateway_id,),
    ).fetchone()
    names = (
        "watermark",
        "floor",
        "duplicates",
        "rejected",
        "conflicts",
        "hold_below",
        "building_code",
    )
    values = row or (0, 0, 0, 0, 0, None, None)
    return dict(zip(names, values, strict=True))
