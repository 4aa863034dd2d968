"""The gateway and platform instances as processes a test can SIGKILL and start again.

    gateway = GatewayProcess(tmp_path / "gw", proxy.host, proxy.port, public_key=key, count=800)
    database = PlatformDatabase(postgres.new_database(), tmp_path / "platform")  # or a file
    consumer = ConsumerProcess(database, broker.host, broker.port, client_id="platform-a")
    gateway.start(); consumer.start()
    gateway.kill(); gateway.start()          # SIGKILL, then the same data dir again
    gateway.stop_making()                    # SIGUSR1: no more events, keep sending
    gateway.journal()                        # {seq: body} read-only from its SQLite file
    gateway.terminate(); consumer.terminate()
    database.stored(GW)                      # {seq: body} as the platform stored them

Each life of a process writes its own log file next to its data, so a killed one leaves what
it printed. Both databases are read outside the processes (SQLite files with read-only
connections), so what the test sees is what a restart would find.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import psycopg

ROOT = Path(__file__).resolve().parents[2]
_PROGRESS = re.compile(r"progress (.*)$")
_FIELD = re.compile(r"(\w+)=(\d+)")


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a WAL database another process writes."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only = 1")
    return conn


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sqlite_rows(path: Path, sql: str, *params: object) -> list[Any]:
    """Rows from a database another process writes, read-only; none before it made them."""
    if not path.exists():
        return []
    with closing(read_only(path)) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # before its first start migrated the file
                return []
            raise


T = TypeVar("T")


def settled(read: Callable[[], T], quiet: float = 1.0, limit: float = 30.0) -> T:
    """`read()` once it has not changed for `quiet` seconds (at most `limit` seconds: then its
    last answer): what was in flight has arrived, a backlog has gone out."""
    deadline = time.monotonic() + limit
    seen = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == seen:
            return now
        seen = now
    return seen


class _Process:
    """One command run again and again, each life logging to `{name}-{n}.log` in `folder`."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start a new life (the previous one must have ended)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: whatever the process had in memory is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code, None if not running."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The end of the current life's log, for assertion messages."""
        if not self.logs or not self.logs[-1].exists():
            return ""
        text = self.logs[-1].read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class GatewayProcess(_Process):
    """`python -m tests.cloud.gateway_proc` on one data folder (see gateway_proc.py)."""

    def __init__(self, folder: Path, host: str, port: int, *, public_key: str, count: int,
                 gateway_id: str = "gw-test-0001", rate: float = 50.0, keepalive: int = 5,
                 ack_timeout: float | None = None, seed: int = 0) -> None:
        super().__init__(folder, "gateway")
        self.host, self.port = host, port
        self.gateway_id = gateway_id
        self.public_key = public_key
        self.count = count
        self.rate = rate
        self.keepalive = keepalive
        self.ack_timeout = ack_timeout
        self.seed = seed
        self.db_path = folder / "gateway.db"

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "tests.cloud.gateway_proc", "--data", str(self.folder),
                "--host", self.host, "--port", str(self.port), "--gateway-id", self.gateway_id,
                "--public-key", self.public_key, "--rate", str(self.rate),
                "--count", str(self.count), "--keepalive", str(self.keepalive),
                "--seed", str(self.seed + 1000 * len(self.logs))]
        if self.ack_timeout is not None:
            argv += ["--ack-timeout", str(self.ack_timeout)]
        return argv

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for this life's first progress line: its signal handlers are in place."""
        if not wait_until(lambda: self.progress_of(len(self.logs) - 1) is not None, timeout):
            raise TimeoutError(f"gateway did not start:\n{self.log_tail()}")

    def stop_making(self) -> None:
        """SIGUSR1: make no more events; the uplink keeps sending what is pending."""
        self.wait_ready()
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR1)

    def burst(self) -> None:
        """SIGUSR2: make its `--burst` events (5,000 by default) at once, as fast as it can."""
        self.wait_ready()
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR2)

    def terminate(self, timeout: float = 15.0) -> int | None:
        if self.running:
            self.wait_ready()  # a SIGTERM before the handler is set would not stop it cleanly
        return super().terminate(timeout)

    def progress_of(self, life: int) -> dict[str, int] | None:
        """The last progress line a life printed, as numbers; None if it printed none."""
        found = None
        if 0 <= life < len(self.logs) and self.logs[life].exists():
            text = self.logs[life].read_text(errors="replace")
            # A line still being written (no newline yet) is left for the next look.
            for line in text[: text.rfind("\n") + 1].splitlines():
                match = _PROGRESS.match(line)
                if match:
                    found = {key: int(value) for key, value in _FIELD.findall(match.group(1))}
        return found

    def total(self, counter: str) -> int:
        """A progress counter summed over every life, as far as each one's last line says:
        e.g. `published`, or `resent` (after an ack timeout)."""
        return sum((self.progress_of(n) or {}).get(counter, 0) for n in range(len(self.logs)))

    def journal(self) -> dict[int, str]:
        """Every event in the journal: seq → the exact JSON text the uplink sends."""
        return {int(seq): str(body) for seq, body in
                sqlite_rows(self.db_path, "SELECT seq, body FROM events ORDER BY seq")}

    def watermark(self) -> tuple[int, int]:
        """(saved ack watermark, last seq) as a restarted gateway would find them."""
        rows = sqlite_rows(self.db_path,
                           "SELECT (SELECT value FROM meta WHERE key = 'acked_seq'),"
                           " (SELECT coalesce(max(seq), 0) FROM events)")
        return (int(rows[0][0] or 0), int(rows[0][1])) if rows else (0, 0)


class PlatformDatabase:
    """The platform's database as a restarted instance would find it, read outside the
    platform: a SQLite file (read-only connections) or a PostgreSQL URL. `folder` holds what
    every instance on it shares besides: the store key and the pictures."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.postgres = url.startswith("postgresql://")

    def _query(self, sql: str, *params: object) -> list[Any]:
        """Rows, or none before the first instance made the tables."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                try:
                    return list(conn.execute(sql.replace("?", "%s"), params).fetchall())
                except psycopg.errors.UndefinedTable:
                    return []
        return sqlite_rows(Path(self.url), sql, *params)

    def has_status(self, gateway_id: str) -> bool:
        """Whether an instance stored this gateway's status (an instance that did is
        subscribed: its events and statuses are one SUBSCRIBE)."""
        return bool(self._query("SELECT 1 FROM status WHERE gateway_id = ?", gateway_id))

    def stored(self, gateway_id: str) -> dict[int, str]:
        """seq → body of every event stored for the gateway."""
        rows = self._query("SELECT seq, body FROM events WHERE gateway_id = ?", gateway_id)
        return {int(seq): str(body) for seq, body in rows}

    def rows_per_seq(self, gateway_id: str) -> dict[int, int]:
        """How many rows each seq has in the platform's events table (1, or dedupe failed)."""
        rows = self._query("SELECT seq, count(*) FROM events WHERE gateway_id = ? GROUP BY seq",
                           gateway_id)
        return {int(seq): int(n) for seq, n in rows}

    def gateway_row(self, gateway_id: str) -> dict[str, int]:
        """watermark, floor, duplicates and rejected as the platform's database holds them."""
        rows = self._query("SELECT watermark, floor, duplicates, rejected FROM gateways"
                           " WHERE gateway_id = ?", gateway_id)
        values = rows[0] if rows else (0, 0, 0, 0)
        names = ("watermark", "floor", "duplicates", "rejected")
        return {name: int(value) for name, value in zip(names, values, strict=True)}

    def rejects(self) -> list[Any]:
        """(gateway_id, topic, reason) of every message the platform refused to store."""
        return self._query("SELECT gateway_id, topic, reason FROM rejects ORDER BY id")

    def conflicts(self) -> list[Any]:
        """(gateway_id, seq) of every second body received for a stored seq."""
        return self._query("SELECT gateway_id, seq FROM conflicts ORDER BY id")


class ConsumerProcess(_Process):
    """`python -m rental_platform run` (rental-platform): one instance on `database`, in its
    shared-subscription `group`, logging into the database's folder under its client id."""

    def __init__(self, database: PlatformDatabase, host: str, port: int, *,
                 client_id: str = "platform-faults", group: str = "rental-platform") -> None:
        super().__init__(database.folder, client_id)
        self.database = database
        self.host, self.port = host, port
        self.client_id = client_id
        self.group = group

    def command(self) -> list[str]:
        folder = self.database.folder
        return [sys.executable, "-m", "rental_platform", "run", "--host", self.host,
                "--port", str(self.port), "--db", self.database.url, "--client-id",
                self.client_id, "--group", self.group, "--store-key", str(folder / "store.key"),
                "--snapshot-dir", str(folder / "snapshots"), "--stats-interval", "5"]

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM once this life has its signal handlers (it logged "consuming"): a life
        just started by the supervisor is still importing, and would die of the signal."""
        if self.running:
            wait_until(lambda: not self.running or "consuming " in self.log_tail(200), 60)
        return super().terminate(timeout)
