"""Figures quoted in docs/store.md; run with `pytest tests/store/test_benchmarks.py -s`.

The assertions are loose (slow CI machines must pass); the printed numbers are the point.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway import passwords
from gateway.store import Store

from .factories import tenant

WAL_HEADER, FRAME_HEADER, PAGE = 32, 24, 4096


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def wal_frames(data_dir: Path, truncate: bool = False) -> int:
    """Pages in the WAL file; with `truncate`, checkpoint first so it starts empty."""
    if truncate:
        conn = sqlite3.connect(data_dir / "gateway.db")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    size = (data_dir / "gateway.db-wal").stat().st_size
    return max(0, size - WAL_HEADER) // (FRAME_HEADER + PAGE)


def access_event(n: int) -> dict[str, object]:
    return {
        "type": "access.granted",
        "ts": "2026-11-26T20:01:02.123+08:00",
        "door": "main",
        "credential": {"kind": "card", "number": 1_000_000 + n},
        "tenant_id": f"00000000-0000-4000-8000-{n:012d}",
        "room": f"{n % 40:04d}",
        "reason": "tenant",
        "snapshot": {"sha256": "ab" * 32, "bytes": 48_213},
    }


def test_append_event_commit_latency_and_bytes_written(store: Store, data_dir: Path) -> None:
    store.add_tenant(tenant(1))
    for n in range(20):  # warm up: tables and indexes have their first pages
        store.append_event(access_event(n))
    frames_before = wal_frames(data_dir, truncate=True)
    timings = []
    count = 100  # stays below the 1000-page autocheckpoint, so the WAL only grows
    for n in range(count):
        start = time.perf_counter()
        store.append_event(access_event(n))
        timings.append(time.perf_counter() - start)
    frames = wal_frames(data_dir) - frames_before
    p50, p95 = percentile(timings, 0.5), percentile(timings, 0.95)
    per_event_kib = frames * (FRAME_HEADER + PAGE) / count / 1024
    print(
        f"append_event (WAL, synchronous=FULL, fsync per commit): p50 {p50 * 1e3:.2f} ms,"
        f" p95 {p95 * 1e3:.2f} ms; {frames / count:.1f} pages = {per_event_kib:.1f} KiB"
        " written to the WAL per event"
    )
    before = wal_frames(data_dir, truncate=True)
    store.acknowledge(count)
    after = wal_frames(data_dir)
    print(f"acknowledge of {count} events: {after - before} page(s) written")
    assert p95 < 0.5
    assert after - before == 1


def test_password_hash_time() -> None:
    timings = []
    for _ in range(10):
        start = time.perf_counter()
        passwords.hash_password("violet-harbour-27")
        timings.append(time.perf_counter() - start)
    print(f"argon2id t=2 m=19 MiB p=1: median {percentile(timings, 0.5) * 1e3:.0f} ms per hash")
    assert percentile(timings, 0.5) < 2.0
