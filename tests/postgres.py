"""A throwaway PostgreSQL 15 cluster on a free loopback port, from Debian's binaries.

    cluster = PostgresCluster.create(Path(tempfile.mkdtemp()))   # initdb
    cluster.start()
    url = cluster.new_database()      # postgresql://postgres@127.0.0.1:PORT/t_1
    cluster.kill()                    # SIGKILL of the postmaster, as a crash
    cluster.start()                   # crash recovery, same port
    cluster.stop()

    standby = cluster.standby(Path(tempfile.mkdtemp()))   # pg_basebackup -R: a hot standby
    standby.start()                   # streams from the primary; read-only queries
    standby.wait_replayed(cluster)    # until it has replayed everything committed so far

As root, `initdb` and `pg_ctl` run as the `postgres` user (initdb refuses root) on a folder it
owns. fsync is off: a SIGKILL of the server loses nothing that way (the kernel keeps the
pages), and the tests make no power-cut claims about PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    """Whether Debian's PostgreSQL 15 server is installed."""
    return (BIN / "initdb").exists()


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    folder: Path
    port: int = field(default_factory=_free_port)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @classmethod
    def create(cls, folder: Path) -> PostgresCluster:
        """initdb a new cluster in `folder` (made, and given to postgres when root)."""
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        cluster = cls(folder)
        subprocess.run(
            _as_owner(
                [
                    str(BIN / "initdb"),
                    "-D",
                    str(cluster.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale",
                    "C",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return cluster

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_owner(
                [
                    str(BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.folder / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, as a crash would."""
        pid = self.pid()
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
        pids = [pid, *map(int, children)]
        for each in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        # Gone for good, not a zombie: the next postmaster refuses to start while the old
        # pid answers kill(pid, 0) or a child still holds the shared memory.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{each}").exists() for each in pids):
            if time.monotonic() > deadline:
                # A zombie its adopting parent does not reap: the lock file would name it.
                (self.data / "postmaster.pid").unlink(missing_ok=True)
                break
            time.sleep(0.02)

    def stop(self) -> None:
        subprocess.run(
            _as_owner([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
        )

    def standby(self, folder: Path) -> PostgresCluster:
        """A hot standby of this (running) cluster in `folder`: `pg_basebackup -R` over
        streaming replication, on a port of its own; start it with `start()`."""
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        standby = PostgresCluster(folder)
        # A fast checkpoint to start from: the default spreads it over minutes.
        backup = [str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port)]
        backup += ["-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream"]
        backup += ["--checkpoint=fast", "--no-sync"]
        subprocess.run(_as_owner(backup), check=True, capture_output=True)
        return standby

    def wait_replayed(self, primary: PostgresCluster, timeout: float = 60) -> None:
        """Wait until this standby has replayed all that `primary` had written when called."""
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            (target,) = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone() or ("",)
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url(), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if row is not None and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby did not replay up to {target}")
                time.sleep(0.05)

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)
