"""Police search at city scale, and the bytes each event costs in PostgreSQL.

For each size asked (events over 180 days of 7,024 buildings, bench/city_events.py), a
database on a throwaway PostgreSQL 15 cluster gets the real schema (`Store.open`: migrations
applied, monthly partitions made), the synthetic events by COPY (the indexes dropped while
loading and made again from their own definitions afterwards, as a bulk load is done), then
VACUUM ANALYZE. Then:

- sizes: every partition's heap, TOAST and each index, per event;
- police search: `--queries` searches of each filter kind with random targets, timed around
  `search_entries` (SQL, the names' lookup, JSON): p50/p95 per kind, and EXPLAIN (ANALYZE,
  BUFFERS) of one of each, to see it read through its index.

    .venv/bin/python -m bench.police_search --sizes 2000000 20000000 --name police_search
    .venv/bin/python -m bench.police_search --sizes 200000 --queries 50 --name police_search_smoke

Check `df -h` first: 20 M events take about 15 GB, and the load writes WAL besides. Each
database is dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench._common import machine, percentiles, save
from bench.city_events import END, ZONE, City
from rental_platform.search import entries_sql, parse_entry_filter, search_entries
from rental_platform.store import Store, StoreConfig
from rental_platform.store.history import ensure_months
from rental_platform.store.ingest import EVENT_COLUMNS
from tests.postgres import PostgresCluster

DAYS = 180
# The database host's settings (ALTER SYSTEM), as for a dedicated server with an SSD; the
# load's own (WAL, checkpoints) do not change what a search reads.
SETTINGS = {
    "shared_buffers": "2GB", "effective_cache_size": "8GB", "maintenance_work_mem": "1GB",
    "max_wal_size": "4GB", "checkpoint_timeout": "30min", "wal_level": "minimal",
    "max_wal_senders": "0", "random_page_cost": "1.1", "jit": "off",
}  # fmt: skip
Search = Callable[[random.Random], dict[str, str]]


def _since(days: float) -> str:
    return (END - timedelta(days=days)).astimezone(ZONE).isoformat()


def searches(city: City) -> dict[str, Search]:
    """Each filter kind, with how a random target is drawn (the window ends at the data's end)."""
    buildings = city.buildings
    registered = [(b, t) for b in buildings for t in b.tenants if t.id_number]

    def pick(rng: random.Random) -> Any:
        return rng.choice(buildings)

    def street(b: Any) -> str:
        return str(b.district + b.street)

    def hour(rng: random.Random) -> dict[str, str]:
        at = END - timedelta(seconds=rng.randrange(DAYS * 86400 - 3600))
        return {"since": (at - timedelta(hours=1)).isoformat(), "until": at.isoformat()}

    return {
        "building_90d": lambda r: {"building": pick(r).code, "since": _since(90)},
        "street_7d": lambda r: {"street": street(pick(r)), "since": _since(7)},
        "community_30d": lambda r: {"community": street(b := pick(r)) + b.community,
                                    "since": _since(30)},
        "gateway_90d": lambda r: {"gateway_id": pick(r).gateway_id, "since": _since(90)},
        "room_180d": lambda r: {"building": (b := pick(r)).code, "room": r.choice(b.tenants).room},
        "card_busy_90d": lambda r: {"card": str(city.busiest_card(pick(r)).card),
                                    "since": _since(90)},
        "card_rare_180d": lambda r: {"card": str(r.choice(pick(r).tenants).card)},
        "id_number_180d": lambda r: {"id_number": r.choice(registered)[1].id_number or ""},
        "city_1h": hour,
        "denied_building_180d": lambda r: {"building": pick(r).code, "result": "denied"},
        "denied_street_30d": lambda r: {"street": street(pick(r)), "result": "denied",
                                        "since": _since(30)},
    }  # fmt: skip


def load(store: Store, city: City, total: int, seed: int) -> dict[str, float]:
    """COPY the events into the real schema; indexes made again after. Returns timings."""
    city.rng = random.Random(f"{seed}-events")  # the same events for every size's run
    db = store.db
    start = (END - timedelta(days=DAYS)).timestamp()
    ensure_months(store, [start + day * 86400.0 for day in range(DAYS + 1)])
    with db.transaction():
        for b in city.buildings:
            db.execute(
                "INSERT INTO gateways (gateway_id, building_code, district, street, community,"
                " building) VALUES (?, ?, ?, ?, ?, ?)",
                (b.gateway_id, b.code, b.district, b.street, b.community, b.number),
            )
    # Indexes of the parent (each partition's follows it) and the partitions' own.
    own = db.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid WHERE (t.relname = 'events' OR t.oid IN"
        " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass))"
        " AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)"
    ).fetchall()
    with db.transaction():
        for name, _ in own:
            db.execute(f"DROP INDEX {name}")
    began = time.monotonic()
    conn = db.connection()
    with (
        conn.cursor() as cursor,
        cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
    ):
        for chunk in city.copy_rows(total=total, days=DAYS, end=END, sealer=store.sealer):
            copy.write(chunk)
    copied = time.monotonic()
    for _, definition in own:
        # A partitioned table's index reads "ON ONLY events": made so, it would cover no
        # partition. Made on the table, it is built on every partition.
        db.execute(definition.replace(" ON ONLY ", " ON "))
    indexed = time.monotonic()
    db.execute("VACUUM ANALYZE events")
    return {"copy_s": round(copied - began, 1), "index_s": round(indexed - copied, 1),
            "vacuum_analyze_s": round(time.monotonic() - indexed, 1)}  # fmt: skip


def sizes(store: Store) -> dict[str, Any]:
    """Heap, TOAST and each index of every partition, summed; bytes per event."""
    db = store.db
    (rows,) = db.execute("SELECT count(*) FROM events").fetchone()
    (heap, toast) = db.execute(
        "SELECT sum(pg_relation_size(c.oid)),"
        " sum(coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0))"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).fetchone()
    indexes = {
        str(name): int(size)
        for name, size in db.execute(
            "SELECT coalesce(p.relname, c.relname), sum(pg_relation_size(c.oid))"
            " FROM pg_inherits t JOIN pg_index x ON x.indrelid = t.inhrelid"
            " JOIN pg_class c ON c.oid = x.indexrelid"
            " LEFT JOIN pg_inherits pi ON pi.inhrelid = c.oid"
            " LEFT JOIN pg_class p ON p.oid = pi.inhparent"
            " WHERE t.inhparent = 'events'::regclass GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    }
    (entries,) = db.execute("SELECT count(*) FROM events WHERE result IS NOT NULL").fetchone()
    total = int(heap) + int(toast) + sum(indexes.values())
    per = {name: round(size / rows, 1) for name, size in indexes.items()}
    return {
        "events": int(rows), "entries": int(entries), "heap_bytes": int(heap),
        "toast_bytes": int(toast), "index_bytes": sum(indexes.values()), "total_bytes": total,
        "bytes_per_event": round(total / rows, 1),
        "heap_per_event": round((int(heap) + int(toast)) / rows, 1),
        "index_per_event": round(sum(indexes.values()) / rows, 1),
        "per_index_per_event": per,
        "average_body_bytes": float(db.execute(
            "SELECT avg(octet_length(body)) FROM events WHERE body IS NOT NULL").fetchone()[0]),
    }  # fmt: skip


def measure(store: Store, city: City, queries: int, seed: int) -> dict[str, Any]:
    """p50/p95 of each filter kind; the plan of one of each."""
    found: dict[str, Any] = {}
    for kind, draw in searches(city).items():
        rng = random.Random(f"{seed}-{kind}")
        times, counts, plan = [], [], ""
        for n in range(queries):
            params = {"purpose": "基准测试", **draw(rng)}
            wanted = parse_entry_filter(params, store.sealer)
            began = time.perf_counter()
            page = search_entries(store, wanted)
            times.append((time.perf_counter() - began) * 1000)
            counts.append(len(page.entries))
            if n == 0:
                query = entries_sql(store, wanted)
                if query is not None:
                    plan = "\n".join(r[0] for r in store.db.execute(
                        "EXPLAIN (ANALYZE, BUFFERS) " + query[0], query[1]))  # fmt: skip
        found[kind] = {**percentiles(times), "mean_rows": round(sum(counts) / len(counts), 1),
                       "plan": plan}  # fmt: skip
    # Deep pages: the fifth page of a street's month, by cursor.
    rng, times = random.Random(f"{seed}-pages"), []
    for _ in range(queries):
        b = rng.choice(city.buildings)
        params = {"purpose": "基准测试", "street": b.district + b.street, "since": _since(30)}
        wanted = parse_entry_filter(params, store.sealer)
        for _page in range(5):
            began = time.perf_counter()
            page = search_entries(store, wanted)
            elapsed = (time.perf_counter() - began) * 1000
            if page.next_cursor is None:
                break
            wanted = parse_entry_filter({**params, "cursor": page.next_cursor}, store.sealer)
        times.append(elapsed)
    found["street_30d_page5"] = percentiles(times)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000_000, 20_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="folder for the cluster")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and databases")
    parser.add_argument("--name", default="police_search")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pg-bench-", dir=args.data))
    folder.chmod(0o755)
    cluster = PostgresCluster.create(folder / "cluster")
    cluster.start()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        for key, value in SETTINGS.items():
            conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
    cluster.stop()
    cluster.start()
    result: dict[str, Any] = {"machine": machine(), "settings": SETTINGS, "days": DAYS,
                              "buildings": 7024, "runs": {}}  # fmt: skip
    try:
        city = City.build(args.seed)
        for total in args.sizes:
            url = cluster.new_database()
            config = StoreConfig.for_url(url, key_file=folder / "store.key",
                                         snapshot_dir=folder / "snapshots")  # fmt: skip
            store = Store.open(config)
            run: dict[str, Any] = {"started": datetime.now().isoformat(timespec="seconds")}
            run["load"] = load(store, city, total, args.seed)
            run["sizes"] = sizes(store)
            print(
                f"{total}: loaded {run['load']}, {run['sizes']['bytes_per_event']} B/event",
                flush=True,
            )
            run["search"] = measure(store, city, args.queries, args.seed)
            result["runs"][str(total)] = run
            store.close()
            save(args.name, result)
            if not args.keep:
                with psycopg.connect(cluster.url(), autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]}")
        if len(args.sizes) >= 2:
            low, high = (
                result["runs"][str(s)]["search"] for s in (min(args.sizes), max(args.sizes))
            )
            result["p95_ratio"] = {kind: round(high[kind]["p95"] / low[kind]["p95"], 2)
                                   for kind in high}  # fmt: skip
        save(args.name, result)
    finally:
        if not args.keep:
            cluster.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
