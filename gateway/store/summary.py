"""Figures for the building head's overview: today's entries, registration completeness.

The district tracks an "information collection rate": the share of a building's tenants whose
record is complete. Here a record is complete when the tenant is active, the lease covers
today and at least one card is active (name, ID number, phone and room are required anyway).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date

from .journal import INDEXED


@dataclass(frozen=True, slots=True)
class Registration:
    """Counts for the collection rate."""

    active_tenants: int
    complete_tenants: int
    rooms: int
    rooms_with_tenants: int

    @property
    def rate(self) -> float | None:
        """Complete records per active tenant (None without tenants)."""
        return None if not self.active_tenants else self.complete_tenants / self.active_tenants


def registration(conn: sqlite3.Connection, today: date) -> Registration:
    """Active and complete tenants, and rooms with at least one active tenant."""
    day = today.isoformat()
    row = conn.execute(
        "SELECT"
        " (SELECT count(*) FROM tenants WHERE status = 'active'),"
        " (SELECT count(*) FROM tenants AS t WHERE t.status = 'active' AND t.valid_from <= ?1"
        "   AND t.valid_until >= ?1 AND EXISTS (SELECT 1 FROM cards AS c"
        "   WHERE c.tenant_id = t.id AND c.status = 'active')),"
        " (SELECT count(*) FROM rooms),"
        " (SELECT count(DISTINCT room) FROM tenants WHERE status = 'active')",
        (day,),
    ).fetchone()
    return Registration(*row)


def entries_since(conn: sqlite3.Connection, since_ms: int) -> dict[str, int]:
    """Access events since `since_ms` (epoch ms) by result: {"granted": n, "denied": m}."""
    # The first seq at or after the time, from the time index; past the indexed events,
    # the few not indexed yet are read directly.
    rows = conn.execute(
        "SELECT result, count(*) FROM events WHERE seq >= coalesce("  # noqa: S608
        f" (SELECT min(seq) FROM event_times WHERE ts_ms >= ?1), {INDEXED} + 1)"
        " AND ts_ms >= ?1 AND result IS NOT NULL GROUP BY result",
        (since_ms,),
    ).fetchall()
    counts = {"granted": 0, "denied": 0}
    counts.update({str(result): int(n) for result, n in rows})
    return counts
