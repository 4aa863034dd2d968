"""History: monthly partitions made ahead, retention, police holds, pictures' retention.

PostgreSQL keeps events in one partition per calendar month (UTC) of `received_at`, the time
an instance received the event: the platform's own clock, so a gateway with a wrong clock
cannot put rows where no partition is, and a month is complete once it is over. Partitions are
made on demand by the batch that needs one (`ensure_months`) and by `upkeep` for the next
month ahead. A month is dropped whole once it ended before `now − retention_days`, so an event
is kept at least `retention_days` and at most a month longer. SQLite deletes the same rows.

A police hold (`place_hold`) names events; they are marked `held`, which in PostgreSQL moves
them into the partition `events_held` (the partition key is `(held, received_at)`), so
dropping their month leaves them. Releasing the last hold on an event moves it back, or
deletes it if its month is past retention already. Pictures of held events are kept too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .database import Database

if TYPE_CHECKING:
    from .opening import Store

log = logging.getLogger(__name__)

PARTITION_LOCK = 0x52_50_50_41_52  # "RPPAR": one instance at a time makes or drops partitions
DAY = 86400.0


def month_start(when: float) -> datetime:
    """The first instant (UTC) of the month containing `when`."""
    moment = datetime.fromtimestamp(when, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def partition_name(start: datetime) -> str:
    """`events_y2026m01` for January 2026."""
    return f"events_y{start.year:04d}m{start.month:02d}"


def ensure_months(store: Store, times: Iterable[float]) -> None:
    """Make the monthly partitions these receive times need (PostgreSQL; nothing in SQLite)."""
    if not store.db.postgres:
        return
    wanted = {month_start(t) for t in times} - store.months
    if not wanted:
        return
    with store.db.transaction():
        store.db.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
        for start in sorted(wanted):
            name = partition_name(start)
            low, high = start.timestamp(), _next_month(start).timestamp()
            store.db.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events"
                f" FOR VALUES FROM (false, {low!r}) TO (false, {high!r})"
            )
            # Unique within the partition: the database's own guard against a second copy
            # (across months, `ahead` and the watermark keep (gateway_id, seq) unique).
            store.db.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {name}_gateway_seq ON {name} (gateway_id, seq)"
            )
    store.months |= wanted


def upkeep(store: Store, now: float) -> dict[str, int]:
    """Make this month and the next ahead, drop what is past retention; return counts."""
    ensure_months(store, [now, _next_month(month_start(now)).timestamp()])
    db = store.db
    cutoff = month_start(now - store.limits.retention_days * DAY).timestamp()
    done = {"months_dropped": 0, "events_deleted": 0, "pictures_deleted": 0}
    with db.transaction():
        if db.postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
            for (name,) in db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_y'"
                " ORDER BY 1"
            ).fetchall():
                year, month = int(name[8:12]), int(name[13:15])
                end = _next_month(datetime(year, month, 1, tzinfo=UTC)).timestamp()
                if end <= cutoff:
                    db.execute(f"DROP TABLE {name}")
                    store.months.discard(datetime(year, month, 1, tzinfo=UTC))
                    done["months_dropped"] += 1
        else:
            done["events_deleted"] = db.execute(
                "DELETE FROM events WHERE received_at < ? AND NOT held", (cutoff,)
            ).rowcount
        for table in ("rejects", "conflicts"):
            db.execute(f"DELETE FROM {table} WHERE received_at < ?", (cutoff,))
    done["pictures_deleted"] = _expire_pictures(store, now)
    if any(done.values()):
        log.info("retention: %s", done)
    return done


def _expire_pictures(store: Store, now: float) -> int:
    """Forget pictures past their own retention (unless their event is held) and delete the
    files no row names any more; once a day also files no row ever named (a crash between a
    picture's write and its row's commit leaves one)."""
    db = store.db
    cutoff = now - store.limits.snapshot_retention_days * DAY
    with db.transaction():
        gone = {
            row[0]
            for row in db.execute(
                "DELETE FROM snapshots WHERE received_at < ? AND NOT EXISTS (SELECT 1 FROM events e"
                " WHERE e.held AND e.gateway_id = snapshots.gateway_id"
                " AND e.event_id = snapshots.event_id) RETURNING sha256",
                (cutoff,),
            ).fetchall()
        }
    if now - store.swept_at >= DAY:
        store.swept_at = now
        gone |= set(store.snapshots.older_than(cutoff))
    deleted = 0
    for sha256 in sorted(gone):
        named = db.execute("SELECT 1 FROM snapshots WHERE sha256 = ? LIMIT 1", (sha256,))
        if named.fetchone() is None:
            store.snapshots.delete(sha256)
            deleted += 1
    return deleted


def place_hold(db: Database, purpose: str, events: Sequence[tuple[str, int]], now: float) -> int:
    """Keep these (gateway_id, seq) events past retention until released; the hold's id."""
    if not purpose.strip():
        raise ValueError("a hold needs its purpose (the case number)")
    with db.transaction():
        (hold_id,) = db.execute(
            "INSERT INTO holds (purpose, created_at) VALUES (?, ?) RETURNING id", (purpose, now)
        ).fetchone()
        db.executemany(
            "INSERT INTO hold_events (hold_id, gateway_id, seq) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(hold_id, g, s) for g, s in events],
        )
        source, params = db.rows_of(sorted(set(events)), ["text", "bigint"])
        db.execute(
            f"UPDATE events SET held = true WHERE NOT held AND (gateway_id, seq) IN ({source})",
            params,
        )
    return int(hold_id)


def release_hold(store: Store, hold_id: int, now: float) -> None:
    """End a hold: its events held by no other hold go back under retention."""
    db = store.db
    cutoff = month_start(now - store.limits.retention_days * DAY).timestamp()
    free = (
        " held AND (gateway_id, seq) IN (SELECT gateway_id, seq FROM hold_events"
        " WHERE hold_id = ?) AND NOT EXISTS (SELECT 1 FROM hold_events h JOIN holds o"
        " ON o.id = h.hold_id WHERE o.released_at IS NULL AND h.gateway_id ="
        " events.gateway_id AND h.seq = events.seq)"
    )
    with db.transaction():
        db.execute(
            "UPDATE holds SET released_at = ? WHERE id = ? AND released_at IS NULL", (now, hold_id)
        )
        db.execute(f"DELETE FROM events WHERE received_at < ? AND{free}", (cutoff, hold_id))
        times = [
            float(r[0])
            for r in db.execute(
                f"SELECT received_at FROM events WHERE{free}", (hold_id,)
            ).fetchall()
        ]
    ensure_months(store, times)
    with db.transaction():
        db.execute(f"UPDATE events SET held = false WHERE{free}", (hold_id,))
