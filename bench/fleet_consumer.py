"""The central consumer as the fleet benchmark runs it: one process per instance.

    with Instance(broker, folder, 0) as instance:
        instance.wait_ready()        # subscribed
        instance.pause(); instance.resume()
        rows = list(instance.stored())   # (gateway_id, seq, ts, received epoch seconds)
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tests.cloud.broker import Broker


class Instance:
    """One consumer process with its own database, in a shared subscription group."""

    def __init__(self, broker: Broker, folder: Path, number: int) -> None:
        self.broker = broker
        self.folder = folder
        self.number = number
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.folder / "events.db"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Instance:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ready_file.unlink(missing_ok=True)
        log = (self.folder / "consumer.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_standin", "--host", self.broker.host,
             "--port", str(self.broker.port), "--db", str(self.db_path),
             "--client-id", f"platform-{self.number}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        return self

    @property
    def _ready_file(self) -> Path:
        return Path(str(self.db_path) + ".ready")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the instance has subscribed."""
        deadline = time.monotonic() + timeout
        while not self._ready_file.exists():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("consumer exited:\n" + self.log())
            if time.monotonic() > deadline:
                raise TimeoutError("consumer not subscribed:\n" + self.log())
            time.sleep(0.05)

    def log(self) -> str:
        path = self.folder / "consumer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pause(self) -> None:
        """Stop the process; its session stays at the broker, which queues for it."""
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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stored(self) -> Iterator[tuple[str, int, str, float]]:
        """Every event stored: gateway id, seq, the event's ts, when the consumer received it."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            yield from db.execute(
                "SELECT gateway_id, seq, json_extract(body, '$.ts'), received FROM events")

    def db_bytes(self) -> int:
        """The database's size on disk, WAL included."""
        return sum(p.stat().st_size for p in self.folder.glob("events.db*"))

    def __enter__(self) -> Instance:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
