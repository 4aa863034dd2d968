"""Backlog drain: events journaled during an outage, sent when the broker is reachable again.

    .venv/bin/python -m bench.backlog_drain --events 100000

The gateway's real store (WAL, synchronous=FULL) holds `--events` pending access events; the
gateway's real uplink (`gateway.uplink.StoreJournal` + `cloud_sync` session and runner) then
connects to a Mosquitto on loopback (persistence on), and the reference consumer
(`rental-platform run`, a separate process with its own SQLite) stores and acknowledges them.
Measured: time from connect to the last event acknowledged (acked_seq = last seq, i.e. the
pending set is empty), events/s, and the gateway process's bytes written during the drain
(ack bookkeeping) from /proc/self/io.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import machine, save
from cloud_sync.runner import Runner
from cloud_sync.uplink import UplinkSession, UplinkSettings
from gateway.store import Store
from gateway.uplink import StoreJournal
from tests.cloud.broker import Broker

GATEWAY_ID = "gw-bench-0001"


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def access_event(n: int) -> dict[str, Any]:
    return {
        "type": "access.granted" if n % 7 else "access.denied",
        "ts": "2026-11-26T20:15:03.123+08:00",
        "clock_synced": True,
        "door": "main",
        "credential": {"kind": "card", "number": 1_000_000 + n % 5000},
        "tenant_id": str(uuid.UUID(int=n % 5000 + 1)),
        "room": f"{n % 30 + 1:02d}01",
        "reason": "valid" if n % 7 else "expired",
        "snapshot": None,
        "snapshot_error": "disabled",
    }


def fill(store: Store, count: int) -> None:
    """Journal `count` events, 2,000 per transaction (seeding only; not what is measured)."""
    done = 0
    while done < count:
        size = min(2000, count - done)

        def batch(tx: Any, start: int = done, size: int = size) -> None:
            for n in range(start, start + size):
                tx.append_event(access_event(n))

        store.transaction(batch)
        done += size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100, help="events in flight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        folder = Path(tmp)
        store = Store.open(folder / "gateway", GATEWAY_ID)
        print(f"journaling {args.events} events…", flush=True)
        fill(store, args.events)
        last = store.pending_events(limit=1)[0].seq + args.events - 1
        with Broker(folder / "broker") as broker:
            consumer = subprocess.Popen(
                [sys.executable, "-m", "rental_platform", "run", "--host", broker.host,
                 "--port", str(broker.port), "--db", str(folder / "platform.db"),
                 "--stats-interval", "0"],
                stdout=subprocess.DEVNULL, stderr=open(folder / "consumer.log", "w"),  # noqa: SIM115
            )  # fmt: skip
            time.sleep(1.5)  # the consumer subscribes before the gateway connects
            journal = StoreJournal(store)
            session = UplinkSession(
                UplinkSettings(broker.host, broker.port, GATEWAY_ID, window=args.window),
                journal,
            )
            runner = Runner()
            runner.add(session)
            written_before = write_bytes()
            started = time.monotonic()
            runner.start()
            progress = []
            while store.acked_seq() < last and time.monotonic() - started < 900:
                time.sleep(0.25)
                progress.append((round(time.monotonic() - started, 2), store.acked_seq()))
            elapsed = time.monotonic() - started
            written = write_bytes() - written_before
            acked = store.acked_seq()
            runner.stop()
            consumer.terminate()
            consumer.wait(10)
        store.close()
    drained = acked - (last - args.events)
    result = {
        "machine": machine(),
        "events": args.events,
        "window": args.window,
        "acked": drained,
        "seconds_to_empty": round(elapsed, 2),
        "events_per_second": round(drained / elapsed),
        "published": session.stats.published,
        "resent": session.stats.resent,
        "gateway_bytes_written_during_drain": written,
        "gateway_bytes_written_per_event": round(written / max(1, drained), 1),
        "progress": progress[:: max(1, len(progress) // 40)],
    }
    save("backlog_drain", result)
    if drained != args.events:
        raise SystemExit(f"only {drained} of {args.events} events acknowledged")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
