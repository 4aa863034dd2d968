"""The reference consumer (`rental_platform.Platform`) as the fleet benchmark runs it.

Each instance is its own process, as `rental-platform run` would be; every instance of a run
shares one database and one shared-subscription group. The process is what `rental-platform
run` does, plus a file saying it has subscribed and its counters written out when it stops:

    .venv/bin/python -m bench.fleet_consumer --port 1883 --db city.db --client-id platform-0

In the parent:

    with Instance(broker, folder, 0) as instance:
        instance.wait_ready()            # subscribed
        instance.pause(); instance.resume()
    rows = list(stored(folder / "platform.db"))
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from rental_platform import Platform, PlatformSettings
from tests.cloud.broker import Broker

GROUP = "city"
ROOT = Path(__file__).resolve().parent.parent


class Instance:
    """One consumer process; its session (and what the broker queues for it) outlives it."""

    def __init__(self, broker: Broker, db_path: Path, client_id: str) -> None:
        self.broker = broker
        self.db_path = db_path
        self.client_id = client_id
        self.process: subprocess.Popen[bytes] | None = None
        self._earlier: dict[str, int] = {}  # PlatformStats counters of its stopped runs

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _file(self, suffix: str) -> Path:
        return self.db_path.with_name(f"{self.client_id}.{suffix}")

    def start(self) -> Instance:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._file("ready").unlink(missing_ok=True)
        with self._file("log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.fleet_consumer", "--host", self.broker.host,
                 "--port", str(self.broker.port), "--db", str(self.db_path),
                 "--client-id", self.client_id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the instance's subscriptions are acknowledged."""
        deadline = time.monotonic() + timeout
        while not self._file("ready").exists():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("consumer exited:\n" + self.log())
            if time.monotonic() > deadline:
                raise TimeoutError("consumer not subscribed:\n" + self.log())
            time.sleep(0.05)

    def log(self) -> str:
        path = self._file("log")
        return path.read_text(errors="replace") if path.exists() else ""

    def pause(self) -> None:
        """Stop the process; the broker keeps queueing its share for its session."""
        self.stop()

    def resume(self) -> None:
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._earlier = self.counters()
        self._file("stats.json").unlink(missing_ok=True)

    def counters(self) -> dict[str, int]:
        """Its PlatformStats counters over all its runs so far (written every 0.2 s)."""
        path = self._file("stats.json")
        try:
            latest = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:  # caught between write and rename: cannot happen, but cheap
            latest = {}
        names = set(self._earlier) | {k for k, v in latest.items() if isinstance(v, int)}
        return {k: self._earlier.get(k, 0) + int(latest.get(k, 0)) for k in sorted(names)}

    def __enter__(self) -> Instance:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stored(db_path: Path) -> Iterator[tuple[str, int, float, float, float]]:
    """Every event stored: gateway id, seq, its ts, when received, when its batch was written."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        yield from db.execute(
            "SELECT gateway_id, seq, ts_epoch, received_at, stored_at FROM events")


def duplicates(db_path: Path) -> int:
    """Events received again and dropped by the dedupe, as the database counts them."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT coalesce(sum(duplicates), 0) FROM gateways").fetchone()[0])


def db_sizes(db_path: Path) -> dict[str, Any]:
    """Bytes on disk: the file after a checkpoint, each table with its indexes (dbstat), and
    the events' JSON bodies alone. Call once every instance has stopped."""
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = dict(db.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d"
            " LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1").fetchall())
        events, body = db.execute(
            "SELECT count(*), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM events"
        ).fetchone()
    file_bytes = sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*"))
    return {
        "file_bytes": file_bytes,
        "table_bytes": tables,
        "events": events,
        "event_json_bytes_mean": round(body / events, 1) if events else None,
        "events_table_bytes_per_event": round(tables.get("events", 0) / events, 1)
        if events else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="one reference consumer instance")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,  # as `rental-platform run` logs
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    platform = Platform(PlatformSettings(host=args.host, port=args.port, db=args.db,
                                         client_id=args.client_id, group=GROUP)).start()
    ready = args.db.with_name(f"{args.client_id}.ready")
    counters = args.db.with_name(f"{args.client_id}.stats.json")

    def write_counters() -> None:
        temporary = counters.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(platform.stats)))
        temporary.replace(counters)

    try:
        platform.wait_connected(30)
        ready.touch()
        while not stop.wait(0.2) and platform.running:
            write_counters()
    finally:
        platform.stop(timeout=30)
        write_counters()
    if platform.failure is not None:
        raise SystemExit(f"consumer stopped after a failure: {platform.failure}")


if __name__ == "__main__":
    main()
