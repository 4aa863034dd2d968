"""Bytes written to storage per journaled access event, and the door path's commit time.

Opens a store in a temporary directory on disk, seeds a registry, then journals access events
the way the door path does (one `append_event`, one commit, per swipe of a registered card)
and acknowledges them the way the uplink does, in one of two patterns: after every event, or
every 100 events. Storage writes are the process's `write_bytes` from `/proc/self/io` (what
Linux charges to the process for dirtying page cache, i.e. what will reach the disk), from
just before the first event to after `close()`, which checkpoints the WAL into the database:
every write the events caused is in the total. `--history N` first journals N older,
acknowledged events, so the journal is not empty (a gateway after months of service).

    .venv/bin/python -m bench.bytes_per_event --events 10000 --history 0 200000
    .venv/bin/python -m bench.bytes_per_event --page-size 0 4096
    .venv/bin/python -m bench.bytes_per_event --snapshot-fill --name bytes_per_event_camera

Run it on a real disk: on tmpfs nothing is written. The figures are per event, everything in
the process included (the WAL, the checkpoint into the database, the WAL index). Linux charges
each page-cache folio when it turns dirty; the store writes its files a page at a time, so in
4 KiB units. A file first read with readahead (copied in, say) can sit in large folios, and
then a one-byte change is charged as a whole folio of up to 2 MiB: hence a store created here.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

from bench._common import machine, percentiles, save
from gateway.store import EventQuery, Store, Transaction, journal
from gateway.store.bulk import seed_synthetic_registry
from gateway.store.context import Context

GATEWAY_ID = "gw-440305-0042"
ZONE = timezone(timedelta(hours=8))
DOORS = ("main", "north", "garage", "bikes")
DENIED = ("expired", "unknown_card", "revoked_card", "moved_out")
CASES = {"ack-every-event": 1, "ack-every-100": 100}


def io_counters() -> dict[str, int]:
    """This process's I/O counters (bytes)."""
    counters: dict[str, int] = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, _, value = line.partition(":")
        counters[key] = int(value)
    return counters


def access_event(rng: random.Random, store: Store, first: int, last: int) -> dict[str, Any]:
    """One swipe as the door path journals it (gateway/door.py, gateway/service.py)."""
    number = rng.randint(first, last)
    denied = rng.random() < 0.1
    if denied and rng.random() < 0.5:
        number = last + 1 + rng.randrange(1_000_000)  # a card nobody holds
    grant = store.card_lookup(number)
    return {
        "type": "access.denied" if denied else "access.granted",
        "ts": datetime.now(ZONE).isoformat(timespec="milliseconds"),
        "clock_synced": True,
        "door": rng.choice(DOORS),
        "credential": {"kind": "card", "number": number},
        "tenant_id": grant.tenant_id if grant else None,
        "room": grant.room if grant else None,
        "reason": rng.choice(DENIED) if denied else "tenant_card",
        "snapshot": None,
        "snapshot_error": "disabled",
    }


def prefill(store: Store, events: int, first: int, last: int) -> None:
    """Journal `events` acknowledged events spread over the days before now."""
    rng = random.Random(2)
    start = datetime.now(ZONE) - timedelta(days=max(events // 2000, 1))
    step = (datetime.now(ZONE) - start) / max(events, 1)
    chunk = 5000
    for done in range(0, events, chunk):
        batch = []
        for n in range(done, min(done + chunk, events)):
            event = access_event(rng, store, first, last)
            event["ts"] = (start + step * n).isoformat(timespec="milliseconds")
            batch.append(journal.prepare_event(store.ctx, event))
        store.transaction(partial(_append_prepared, store.ctx, batch))
    store.acknowledge(events)


def _append_prepared(ctx: Context, batch: list[journal.PreparedEvent], tx: Transaction) -> None:
    journal.append_prepared(tx.conn, ctx, batch)


def settle(store: Store, timeout: float = 600.0) -> None:
    """Wait until the writer has indexed the history (it does while idle), so that the
    measured events do not pay for it."""
    deadline = time.monotonic() + timeout
    reader = store.reader()
    while time.monotonic() < deadline:
        indexed = reader.execute(f"SELECT {journal.INDEXED}").fetchone()[0]
        if indexed + journal.INDEX_BLOCK > journal.last_seq(reader):
            return
        time.sleep(0.05)
    raise RuntimeError("the journal's history was not indexed in time")


def query_times(store: Store, rounds: int = 30) -> dict[str, float]:
    """p50 of police queries (ms) on the journal, each with random values of its filter."""
    rng = random.Random(5)
    reader = store.reader()
    values = {
        column: [row[0] for row in reader.execute(
            f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL LIMIT 2000")]
        for column in ("card", "tenant_id", "room")
    }  # fmt: skip
    now = datetime.now(ZONE)
    queries: dict[str, Callable[[], EventQuery]] = {
        "card, all time": lambda: EventQuery(card=rng.choice(values["card"])),
        "tenant, all time": lambda: EventQuery(tenant_id=rng.choice(values["tenant_id"])),
        "room, last 30 days": lambda: EventQuery(
            room=rng.choice(values["room"]), since=now - timedelta(days=30)
        ),
        "door, one day": lambda: EventQuery(
            door="main", since=now - timedelta(days=2), until=now - timedelta(days=1)
        ),
        "newest 100": lambda: EventQuery(),
    }
    result: dict[str, float] = {}
    for name, make in queries.items():
        times: list[float] = []
        for _ in range(rounds):
            query = make()
            started = time.perf_counter()
            store.query_events(query)
            times.append((time.perf_counter() - started) * 1000)
        result[name] = percentiles(times)["p50"]
    return result


def run_case(
    name: str, ack_every: int, history: int, page_size: int, args: argparse.Namespace
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-bytes-", dir=args.dir) as tmp:
        data_dir = Path(tmp)
        if page_size:
            # A database file that already has its page size, as one created by an older
            # version (the store sets the page size of new databases only).
            conn = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
            conn.execute(f"PRAGMA page_size = {int(page_size)}")
            conn.execute("CREATE TABLE page_size_set (x)")
            conn.execute("DROP TABLE page_size_set")
            conn.close()
            (data_dir / "gateway.db").chmod(0o600)
        with Store.open(data_dir, GATEWAY_ID) as store:
            seeded = seed_synthetic_registry(store, tenants=args.tenants)
            if history:
                prefill(store, history, seeded.first_card, seeded.last_card)
                settle(store)
        db = data_dir / "gateway.db"
        page_size = int.from_bytes(db.read_bytes()[16:18], "big") or 65536
        db_bytes_before = db.stat().st_size
        rng = random.Random(1)
        store = Store.open(data_dir, GATEWAY_ID)
        events = [
            access_event(rng, store, seeded.first_card, seeded.last_card)
            for _ in range(args.events)
        ]
        commit_ms: list[float] = []
        ack_ms: list[float] = []
        before = io_counters()
        started = time.monotonic()
        for n, event in enumerate(events, start=1):
            event["ts"] = datetime.now(ZONE).isoformat(timespec="milliseconds")
            t0 = time.perf_counter_ns()
            if args.snapshot_fill:
                event["snapshot_error"] = "interrupted"
                entry = store.append_event(event, capture=True)
            else:
                entry = store.append_event(event)
            t1 = time.perf_counter_ns()
            commit_ms.append((t1 - t0) / 1e6)
            if args.snapshot_fill:  # the capture worker's fill: a second commit, off the door path
                store.fill_snapshot(entry.seq, {"sha256": f"{n:064x}", "bytes": 40_000 + n})
                t1 = time.perf_counter_ns()
            if n % ack_every == 0:
                store.acknowledge(entry.seq)
                ack_ms.append((time.perf_counter_ns() - t1) / 1e6)
        seconds = time.monotonic() - started
        before_close = io_counters()
        store.close()
        after = io_counters()
        queries: dict[str, float] = {}
        if history:  # afterwards: reads also write (SQLite's read marks in the WAL index)
            with Store.open(data_dir, GATEWAY_ID) as store:
                queries = query_times(store)
        written = after["write_bytes"] - before["write_bytes"]
        at_close = after["write_bytes"] - before_close["write_bytes"]
        return {
            "case": name,
            "snapshot_filled": bool(args.snapshot_fill),
            "events": args.events,
            "history_events": history,
            "registry_tenants": args.tenants,
            "page_size": page_size,
            "kib_per_event": round(written / args.events / 1024, 2),
            "of_which_at_close_kib_per_event": round(at_close / args.events / 1024, 2),
            "cancelled_kib_per_event": round(
                (after["cancelled_write_bytes"] - before["cancelled_write_bytes"])
                / args.events / 1024, 2),
            "write_syscalls_per_event": round((after["syscw"] - before["syscw"]) / args.events, 2),
            "database_growth_bytes_per_event": round(
                (db.stat().st_size - db_bytes_before) / args.events),
            "events_per_second": round(args.events / seconds),
            "append_event_ms": percentiles(commit_ms),
            "acknowledge_ms": percentiles(ack_ms),
            "query_p50_ms": queries,
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument(
        "--history",
        type=int,
        nargs="+",
        default=[0],
        help="acknowledged events journaled before the measurement (one run per value)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        nargs="+",
        default=[0],
        help="create the database with this page size, as an older version did (0: the store's"
        " own choice for a new database); one run per value",
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--dir", default=None, help="where to create the store (a real disk)")
    parser.add_argument("--name", default="bytes_per_event", help="result file name")
    parser.add_argument(
        "--snapshot-fill",
        action="store_true",
        help="journal each event as held for its snapshot and fill the snapshot in after, as"
        " a gateway with a camera does (the JPEG file itself is not counted)",
    )
    args = parser.parse_args()
    runs = [
        run_case(name, CASES[name], history, page_size, args)
        for page_size in args.page_size
        for history in args.history
        for name in args.cases
    ]
    save(args.name, {"machine": machine(), "runs": runs})


if __name__ == "__main__":
    main()
