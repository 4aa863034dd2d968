"""Door isolation: card-to-relay latency with nothing else running, against the same with every
other load on the gateway at once.

One run of `gateway run` (the real supervisor, every part a process of its own), one libosdp
reader on a pty, and blocks of swipes that alternate:

- quiet: loads (a)-(e) off, the camera's stream stopped, the uplink connected but cut off from
  the broker by a partitioned proxy (it holds its window of events and waits);
- loaded, all at once: (a) slow HTTP connections to the web port whose headers never end,
  reopened when closed; (b) waves of parallel failed logins; (c) the building head's
  100,000-row tenant CSV import through the page's form, again when done; (d) the police's
  20,000-row CSV export, again when done; (e) the uplink draining a backlog of 100,000 events
  to Mosquitto and the reference platform (the proxy healed); (f) the 720p camera streaming.
  A loaded block lasts until it has `--swipes` swipes and every load finished a round (one
  import, one export, one wave of logins, the backlog drained), so each load's heaviest phase
  (the import's write transaction, say) falls among the swipes.

The web is driven only through http://[web host]:[web port], whatever serves it. Everything
the gateway does not run itself (the load clients, Mosquitto, the platform, the camera's
source, the proxy) runs at `--load-nice`: on a building's Pi they are other machines, so
Mosquitto's and the platform's files are kept in memory (/dev/shm), off the gateway's disk.
The simulated reader runs in this process, which (as root) runs at READER_NICE: a reader is a
device of its own. A probe records how long SQLite's write lock is held, by anyone, all along.

The result: card-to-relay latency per block kind and their ratio, swipes not decided within
2 s, every opened swipe's access.granted in the journal in order (and no seq missing), the
peak RSS (VmHWM, reset per block), CPU and disk writes of every part, the write-lock holds,
and what each load achieved, in bench/results/NAME.json.

    .venv/bin/python -m bench.door_isolation --blocks 4 --swipes 50 --quiet-swipes 150
    .venv/bin/python -m bench.door_isolation --loads import --blocks 1 --name door_isolation_import
    .venv/bin/python -m bench.door_isolation --import-alone  # the import's lock, nothing else
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import difflib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._common import RESULTS, machine, save
from bench.gateway_rss import status_kib
from bench.isolation_report import (
    SWIPE_TIMEOUT_S,
    Block,
    Swipe,
    door_steps,
    log_summary,
    report,
)
from bench.web import USERS, access_event
from cloud_sync.envelope import public_key_text
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import Config, load_config
from gateway.parts.runtime import Runtime
from gateway.parts.web import expected_parts
from gateway.store import Store, Transaction, journal
from gateway.store.bulk import seed_synthetic_registry
from gateway.store.context import Context
from gateway.store.db import connect_reader
from gateway.store.writer import written_bytes
from tests.cloud.broker import Broker
from tests.e2e.building import free_port, write_config

GATEWAY_ID = "gw-test-0001"  # tests.e2e.building.write_config's
# With the building's offset: the web part reads a time without one in the machine's zone.
EXPORT_SINCE, EXPORT_UNTIL = "2025-01-01T00:00+08:00", "2025-02-01T00:00+08:00"
BACKLOG_DOOR = "backlog"  # the backlog's events, told apart from the swipes'
CHUNK = 5000
HEAD = USERS["head"]
POLICE = USERS["police"]
LOADS = ("slow", "logins", "import", "export")  # processes of bench.isolation_loads
ALL_LOADS = (*LOADS, "drain", "camera")
PR_SET_PDEATHSIG = 1
# The simulated reader runs in this process; on a building's Pi it is a device of its own, so
# its timing must not suffer from the loads: when allowed (root), this process runs first.
READER_NICE = -10
CITY_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None


@dataclass(frozen=True)
class Plan:
    """What one run does; the defaults are the brief's."""

    blocks: int = 4  # of each kind
    swipes: int = 50  # per loaded block at least (it takes more; see the module docstring)
    quiet_swipes: int = 150  # per quiet block: the baseline's p99 needs a few hundred in all
    cards: int = 2000
    slow: int = 1100
    logins: int = 100
    import_rows: int = 100_000
    export_rows: int = 20_000
    backlog: int = 100_000
    camera: tuple[int, int, float] | None = (1280, 720, 10.0)
    load_nice: int = 10
    block_cap_s: float = 900.0  # a loaded block ends after this even if a load is not done
    stop_cap_s: float = 900.0  # waiting for the loads' last round after a loaded block
    lock_probe: bool = True
    loads: tuple[str, ...] = ALL_LOADS  # fewer, to tell which load does what


# ---------------------------------------------------------------------------- helpers


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> float:
    """Poll until `condition()`; the seconds it took. RuntimeError after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def renice(pid: int, nice: int) -> None:
    """Every thread of `pid` (niceness is per thread on Linux)."""
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)


def end_with_us(nice: int = 0) -> Callable[[], None]:
    """For preexec_fn: SIGTERM when the bench dies, even by SIGKILL; then `nice`."""

    def prepare() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # absolute: this process may run at READER_NICE

    return prepare


class Child:
    """A helper process of the bench, niced, stopped with SIGTERM then SIGKILL."""

    def __init__(
        self, args: list[str], *, nice: int, log: Path, stdin: bool = False, stdout: bool = False
    ) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                preexec_fn=end_with_us(nice),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else out,
                stderr=out,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def line(self, timeout: float = 30.0) -> str:
        """The next line it prints (startup handshakes)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        text = self.proc.stdout.readline() if ready else ""
        if not text:
            raise RuntimeError(f"{self.proc.args!r} printed nothing within {timeout:.0f} s")
        return text.strip()

    def say(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        if self.line() != "ok":
            raise RuntimeError(f"{command}: no ok")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        return self.proc.returncode


class Load:
    """One load of bench.isolation_loads in its own process."""

    def __init__(self, kind: str, folder: Path, nice: int, args: list[str]) -> None:
        self.kind = kind
        self.stats_path = folder / f"{kind}-{time.monotonic_ns()}.json"
        self.child = Child(
            [
                sys.executable,
                "-m",
                "bench.isolation_loads",
                kind,
                "--stats",
                str(self.stats_path),
                *args,
            ],
            nice=nice,
            log=folder / f"{kind}.log",
        )

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {"rounds": 0}
        return data

    def rounds(self) -> int:
        return int(self.stats().get("rounds", 0))

    def stop(self, timeout: float) -> dict[str, Any]:
        code = self.child.stop(timeout)
        return {**self.stats(), "exit_code": code}


# ------------------------------------------------------------------------------ setup


def write_gateway_config(
    folder: Path, bus_port: str, camera_url: str | None, mqtt_port: int, public_key: str
) -> Path:
    path = write_config(
        folder, bus_port, [{"name": "main", "address": 1, "unlock_seconds": 1}], free_port()
    )
    with path.open("a") as config:
        if camera_url is not None:
            config.write(f'\n[camera]\nsource = "{camera_url}"\nmin_free_mb = 100\n')
        # The keepalive outlasts a quiet block, during which the proxy holds every byte.
        config.write(
            f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
            f'command_public_key = "{public_key}"\nkeepalive_seconds = 1200\n'
        )
    return path


def backlog_event(n: int) -> dict[str, Any]:
    return {
        "type": "access.granted" if n % 7 else "access.denied",
        "clock_synced": True,
        "door": BACKLOG_DOOR,
        "credential": {"kind": "card", "number": 5_000_000 + n % 5000},
        "tenant_id": None,
        "room": None,
        "reason": "tenant_card" if n % 7 else "unknown_card",
        "snapshot": None,
        "snapshot_error": "disabled",
    }


def append_events(store: Store, events: list[dict[str, Any]]) -> None:
    ctx = store.ctx
    for start in range(0, len(events), CHUNK):
        batch = [journal.prepare_event(ctx, e) for e in events[start : start + CHUNK]]
        store.transaction(partial(_append, ctx, batch))


def _append(ctx: Context, batch: list[journal.PreparedEvent], tx: Transaction) -> None:
    journal.append_prepared(tx.conn, ctx, batch)


def seed(config: Config, plan: Plan) -> dict[str, Any]:
    """Registry, users, the export's acknowledged access events (a month of 2025)."""
    started = time.monotonic()
    with Store.open(config.gateway.data_dir, config.gateway.id) as store:
        seeded = seed_synthetic_registry(store, tenants=max(plan.cards // 2, 1), cards_per_tenant=2)
        for username, role, password in (HEAD, POLICE):
            store.add_user(username, role, password)
        holders = [
            (int(n), str(t), str(r))
            for n, t, r in store.reader().execute(
                "SELECT c.number, t.id, t.room FROM cards AS c JOIN tenants AS t"
                " ON t.id = c.tenant_id"
            )
        ]
        zone = ZoneInfo(config.gateway.timezone)
        first = datetime.fromisoformat(EXPORT_SINCE).astimezone(zone)
        step = (datetime.fromisoformat(EXPORT_UNTIL).astimezone(zone) - first) / max(
            plan.export_rows, 1
        )
        rng = random.Random(2)
        append_events(
            store,
            [
                access_event(rng, holders, 90_000_000, first + step * n)
                for n in range(plan.export_rows)
            ],
        )
        store.acknowledge(store.last_seq())
    return {
        "first_card": seeded.first_card,
        "last_card": seeded.last_card,
        "export_events": plan.export_rows,
        "seconds": round(time.monotonic() - started, 1),
    }


class Journal:
    """Read-only looks at the gateway's and the platform's databases."""

    def __init__(self, db: Path, platform_db: Path) -> None:
        self.db = db
        self.platform_db = platform_db

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        conn = connect_reader(self.db)
        try:
            yield conn
        finally:
            conn.close()

    def seqs(self) -> tuple[int, int]:
        """(last seq, acknowledged seq)."""
        with self.reader() as conn:
            return journal.last_seq(conn), journal.acked_seq(conn)

    def indexed(self) -> bool:
        with self.reader() as conn:
            indexed = conn.execute(f"SELECT {journal.INDEXED}").fetchone()[0] or 0
            return bool(indexed + journal.INDEX_BLOCK > journal.last_seq(conn))

    def platform_watermark(self) -> int:
        if not self.platform_db.exists():
            return 0
        conn = sqlite3.connect(f"file:{self.platform_db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT watermark FROM gateways WHERE gateway_id = ?", (GATEWAY_ID,)
            ).fetchone()
            return int(row[0]) if row else 0
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    def platform_stored(self, since: float, until: float) -> int:
        conn = sqlite3.connect(f"file:{self.platform_db}?mode=ro", uri=True, timeout=5)
        try:
            return int(
                conn.execute(
                    "SELECT count(*) FROM events WHERE gateway_id = ?"
                    " AND stored_at BETWEEN ? AND ?",
                    (GATEWAY_ID, since, until),
                ).fetchone()[0]
            )
        finally:
            conn.close()


def top_up_backlog(config: Config, store_journal: Journal, backlog: int, offset: int) -> int:
    """Journal events until `backlog` wait for the uplink; how many were added."""
    last, acked = store_journal.seqs()
    missing = max(0, backlog - (last - acked))
    if missing:
        with Store.open(config.gateway.data_dir, config.gateway.id) as store:
            append_events(store, [backlog_event(offset + n) for n in range(missing)])
    return missing


# ------------------------------------------------------------------------ the gateway


class Gateway:
    """`gateway run` as a subprocess, and its parts' pids."""

    def __init__(self, config_path: Path, log: Path) -> None:
        self.config = load_config(config_path)
        self.runtime = Runtime.for_config(self.config)
        self.url = f"http://{self.config.web.host}:{self.config.web.port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "-v", "-c", str(config_path), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=end_with_us(),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def pid(self, part: str) -> int | None:
        report = self.runtime.read_health(part)
        return None if report is None else int(report["pid"])

    def pids(self) -> dict[str, int | None]:
        return {part: self.pid(part) for part in expected_parts(self.config)}

    def health(self) -> dict[str, Any] | None:
        try:
            report: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None
        return report

    def up(self) -> bool:
        report = self.health()
        return bool(
            report is not None
            and report.get("status") == "ok"
            and report["doors"].get("main", {}).get("reader_online")
            and all(p is not None for p in self.pids().values())
        )

    def camera_online(self) -> bool | None:
        report = self.runtime.read_health("camera")
        camera = (report or {}).get("camera") or {}
        online = camera.get("online")
        return None if online is None else bool(online)

    def uplink_connected(self) -> bool:
        report = self.runtime.read_health("uplink")
        return bool(((report or {}).get("uplink") or {}).get("connected"))

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


# ------------------------------------------------------------------------ the blocks


def swipe(reader: SimulatedReader, card: int) -> Swipe:
    presented = time.monotonic_ns()
    reader.present_card(card)
    command = reader.wait_for_output(timeout=SWIPE_TIMEOUT_S)
    ms = None if command is None else (command.at_ns - presented) / 1e6
    return Swipe(round(presented / 1e9, 4), card, None if ms is None else round(ms, 2))


def run_block(
    block: Block,
    gateway: Gateway,
    reader: SimulatedReader,
    rng: random.Random,
    first_card: int,
    last_card: int,
    count: int,
    more: Callable[[], bool] = lambda: False,
    cap_s: float = 3600.0,
) -> None:
    """Swipe `count` times, then on while `more()` (at most `cap_s` in all)."""
    block.pids = gateway.pids()
    cpu0: dict[str, float] = {}
    written0: dict[str, int] = {}
    for part, pid in block.pids.items():
        if pid is not None:
            reset_peak(pid)
            with contextlib.suppress(OSError):
                cpu0[part] = cpu_seconds(pid)
                written0[part] = written_bytes(f"/proc/{pid}/io")
    block.started = time.monotonic()
    while len(block.swipes) < count or more():
        if time.monotonic() - block.started > cap_s and len(block.swipes) >= count:
            break
        block.swipes.append(swipe(reader, rng.randint(first_card, last_card)))
        # The LED and buzzer go out, then a random part of the reader's 20 ms loop passes.
        time.sleep(0.2 + rng.random() * 0.05)
        while reader.wait_for_output(timeout=0) is not None:  # a swipe given up on, opened late
            block.late_outputs += 1
    block.ended = time.monotonic()
    block.pids_after = gateway.pids()
    for part, pid in block.pids_after.items():
        if pid is None:
            continue
        # A part restarted during the block: its peak since it started (VmHWM is per process).
        with contextlib.suppress(OSError):
            block.peak_kib[part] = status_kib(pid)["VmHWM"]
            block.fds[part] = len(os.listdir(f"/proc/{pid}/fd"))
            if pid == block.pids.get(part) and part in cpu0:
                elapsed = block.ended - block.started
                seconds = cpu_seconds(pid) - cpu0[part]
                block.cpu_percent[part] = round(100 * seconds / elapsed, 1)
                written = written_bytes(f"/proc/{pid}/io") - written0[part]
                block.disk_mb_s[part] = round(written / 1e6 / elapsed, 2)
    block.load_avg = round(os.getloadavg()[0], 2)


@dataclass
class Rig:
    """Everything the blocks need."""

    plan: Plan
    folder: Path
    gateway: Gateway
    reader: SimulatedReader
    journal: Journal
    proxy: Child
    camera_port: int | None
    seeded: dict[str, Any]
    camera: Child | None = None
    backlog_offset: int = 0
    import_round: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, what)

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic(), 3), what))
        print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)

    # -- camera ---------------------------------------------------------------------------

    def camera_on(self) -> float:
        if self.plan.camera is None or self.camera is not None or "camera" not in self.plan.loads:
            return 0.0
        width, height, fps = self.plan.camera
        self.camera = Child(
            [
                sys.executable,
                "-m",
                "gateway.camera.synthetic",
                "--width",
                str(width),
                "--height",
                str(height),
                "--fps",
                str(fps),
                "--port",
                str(self.camera_port),
            ],
            nice=self.plan.load_nice,
            log=self.folder / "camera.log",
            stdout=True,
        )
        self.camera.line()
        return wait_for(
            "the camera part's stream", lambda: self.gateway.camera_online() is True, 120
        )

    def camera_off(self, wait: bool = True) -> None:
        if self.camera is None:
            return
        self.camera.stop()
        self.camera = None
        if wait:
            wait_for(
                "the camera part to see its stream stop",
                lambda: self.gateway.camera_online() is False,
                60,
            )

    # -- quiet ----------------------------------------------------------------------------

    def quiesce(self) -> float:
        """Wait until web, uplink and camera parts idle and the journal is indexed."""
        started = time.monotonic()
        deadline = started + 300

        def busy() -> bool:
            pids = [p for part, p in self.gateway.pids().items() if part != "door" and p]
            before = {p: cpu_seconds(p) for p in pids}
            time.sleep(1.0)
            return (
                any(cpu_seconds(p) - before[p] > 0.05 for p in pids) or not self.journal.indexed()
            )

        with contextlib.suppress(OSError):
            while busy() and time.monotonic() < deadline:
                pass
        return round(time.monotonic() - started, 1)

    def quiet_block(self, index: int, rng: random.Random) -> Block:
        block = Block("quiet", index)
        self.note(f"quiet block {index}")
        run_block(
            block,
            self.gateway,
            self.reader,
            rng,
            self.seeded["first_card"],
            self.seeded["last_card"],
            self.plan.quiet_swipes,
        )
        return block

    # -- loaded ---------------------------------------------------------------------------

    def start_loads(self) -> dict[str, Load]:
        """The web loads this plan asks for, each a process of its own."""
        plan, url = self.plan, self.gateway.url
        args = {
            "slow": ["--count", str(plan.slow)],
            "logins": ["--count", str(plan.logins)],
            "import": ["--count", str(plan.import_rows), "--first-round", str(self.import_round),
                       "--user", HEAD[0], HEAD[2]],
            "export": ["--since", EXPORT_SINCE, "--until", EXPORT_UNTIL, "--user", POLICE[0],
                       POLICE[2]],
        }  # fmt: skip
        return {
            kind: Load(kind, self.folder, plan.load_nice, ["--url", url, *args[kind]])
            for kind in LOADS
            if kind in plan.loads
        }

    def loaded_block(self, index: int, rng: random.Random) -> Block:
        plan = self.plan
        drain = "drain" in plan.loads
        block = Block("loaded", index)
        last, acked = self.journal.seqs()
        self.note(f"loaded block {index}: starting loads ({last - acked} events pending)")
        camera_wait = self.camera_on()
        loads = self.start_loads()
        warm = time.monotonic()
        try:
            if "slow" in loads:  # every slow connection held once, or a minute (some refused)
                with contextlib.suppress(RuntimeError):
                    wait_for("the slow connections", lambda: loads["slow"].rounds() > 0, 60)
            warm = time.monotonic() - warm
            target = self.journal.seqs()[0]
            healed_wall = time.time()
            if drain:
                self.proxy.say("heal")
            drained: dict[str, float] = {}

            def more() -> bool:
                if drain and "at" not in drained and self.journal.platform_watermark() >= target:
                    drained["at"] = time.monotonic()
                return (drain and "at" not in drained) or any(
                    load.rounds() < 1
                    for kind, load in loads.items()
                    if kind != "slow" and load.child.proc.poll() is None
                )

            self.note(f"loaded block {index}: swiping")
            healed = time.monotonic()
            run_block(block, self.gateway, self.reader, rng, self.seeded["first_card"],
                      self.seeded["last_card"], plan.swipes, more, plan.block_cap_s)  # fmt: skip
            if drain:
                self.proxy.say("partition")
            partitioned_wall = time.time()
            self.note(f"loaded block {index}: {len(block.swipes)} swipes; stopping loads")
        finally:
            results = {kind: load.stop(plan.stop_cap_s) for kind, load in loads.items()}
        self.import_round += len(results.get("import", {}).get("imports", [])) + 1
        self.camera_off()
        quiesce = self.quiesce()
        block.loads = {
            **results,
            "warm_up_s": round(warm, 1),
            "camera_online_after_s": round(camera_wait, 1),
            "quiesce_after_s": quiesce,
        }
        if drain:
            stored = self.journal.platform_stored(healed_wall, partitioned_wall)
            seconds = max(block.ended - healed, 1e-3)
            took = drained["at"] - healed if "at" in drained else None
            block.loads["drain"] = {
                "pending_at_start": target - acked,
                "stored_by_platform": stored,
                "seconds": round(seconds, 1),
                "events_per_second": round(stored / seconds),
                "backlog_drained_after_s": None if took is None else round(took, 1),
                "backlog_events_per_second": None
                if took is None
                else round((target - acked) / max(took, 1e-3)),
            }
        return block


# ------------------------------------------------------------------------ the run


def run(
    plan: Plan, folder: Path, checkpoint: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """The whole benchmark in `folder`; returns the result, and hands `checkpoint` the result
    so far (marked incomplete) after each loaded block, so a run cut short still tells."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, READER_NICE)
    with ExitStack() as stack:
        bus = stack.enter_context(SimulatedBus())
        # Mosquitto and the platform stand for the city's machines: their files go to memory,
        # so their writes do not queue on this disk ahead of the door's commits.
        city = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="city-", dir=CITY_DIR)))
        broker = stack.enter_context(Broker(city / "broker"))
        assert broker.process is not None
        renice(broker.process.pid, plan.load_nice)
        proxy = Child(
            [
                sys.executable,
                "-m",
                "bench.isolation_loads",
                "proxy",
                "--target",
                broker.host,
                str(broker.port),
            ],
            nice=plan.load_nice,
            log=folder / "proxy.log",
            stdin=True,
            stdout=True,
        )
        stack.callback(proxy.stop)
        proxy_port = int(proxy.line())
        platform_db = city / "platform.db"
        platform = Child(
            [
                sys.executable,
                "-m",
                "rental_platform",
                "run",
                "--host",
                broker.host,
                "--port",
                str(broker.port),
                "--db",
                str(platform_db),
                "--stats-interval",
                "0",
            ],
            nice=plan.load_nice,
            log=folder / "platform.log",
        )
        stack.callback(platform.stop)
        camera_port = free_port() if plan.camera else None
        camera_url = f"http://127.0.0.1:{camera_port}/video.mjpg" if camera_port else None
        config_path = write_gateway_config(
            folder, bus.port, camera_url, proxy_port, public_key_text(Ed25519PrivateKey.generate())
        )
        config = load_config(config_path)
        seeded = seed(config, plan)
        db = Path(config.gateway.data_dir) / "gateway.db"
        store_journal = Journal(db, platform_db)
        reader = SimulatedReader(bus, 1).start()
        stack.callback(reader.stop)
        probe = None
        if plan.lock_probe:
            probe = Load("probe", folder, 0, ["--db", str(db)])
            stack.callback(probe.stop, 10)
        gateway = Gateway(config_path, folder / "gateway.log")
        stack.callback(gateway.stop)
        rig = Rig(plan, folder, gateway, reader, store_journal, proxy, camera_port, seeded)
        stack.callback(rig.camera_off, wait=False)
        rig.note("gateway starting")
        wait_for("the gateway", gateway.up, 120)
        wait_for("the uplink's session", gateway.uplink_connected, 60)
        proxy.say("partition")
        first_seq = store_journal.seqs()[0]
        rng = random.Random(11)
        blocks: list[Block] = []
        for index in range(plan.blocks):
            rig.quiesce()
            blocks.append(rig.quiet_block(index, rng))
            if "drain" in plan.loads:
                rig.note("topping up the backlog")
                rig.backlog_offset += top_up_backlog(
                    config, store_journal, plan.backlog, rig.backlog_offset
                )
                wait_for("the journal's index", store_journal.indexed, 600)
            blocks.append(rig.loaded_block(index, rng))
            if checkpoint is not None:
                probe_so_far = probe.stats() if probe is not None else {}
                check = check_journal(store_journal, first_seq, blocks)
                so_far = report(asdict(plan), seeded, blocks, probe_so_far, check, None, rig.events)
                checkpoint({"complete": False, "blocks_done": index + 1, **so_far})
        rig.note("stopping")
        gateway_uplink = (gateway.health() or {}).get("uplink")
        probe_stats = probe.stop(10) if probe is not None else {}
        gateway_code = gateway.stop()
        check = check_journal(store_journal, first_seq, blocks)
        result = report(asdict(plan), seeded, blocks, probe_stats, check, gateway_code, rig.events)
        result["gateway_log_errors"] = log_summary(folder / "gateway.log")
        wall_offset = time.time() - time.monotonic()
        result["door_steps"] = door_steps(folder / "gateway.log", blocks, wall_offset)
        result["uplink_at_end"] = gateway_uplink
        return {"complete": True, **result}
    raise AssertionError("unreachable")


def check_journal(store_journal: Journal, first_seq: int, blocks: list[Block]) -> dict[str, Any]:
    """Every swipe that opened the door has its access.granted, in swipe order; no seq is
    missing anywhere in the journal."""
    swipes = [s for b in sorted(blocks, key=lambda b: b.started) for s in b.swipes]
    opened = [s.card for s in swipes if s.ms is not None]
    with store_journal.reader() as conn:
        low, high, count = conn.execute(
            "SELECT min(seq), max(seq), count(*) FROM events"
        ).fetchone()
        found = conn.execute(
            "SELECT type, card FROM events WHERE seq > ? AND door = 'main'"
            " AND type IN ('access.granted', 'access.denied') ORDER BY seq",
            (first_seq,),
        ).fetchall()
    granted = [int(card) for kind, card in found if kind == "access.granted"]
    # The longest common subsequence of the two: cards repeat, so a plain search could match
    # a later swipe of the same card and skip the ones in between.
    matcher = difflib.SequenceMatcher(None, opened, granted, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return {
        "journal_events": count,
        "seq_range": [low, high],
        "seq_gaps": (high - low + 1 - count) if count else 0,
        "swipes": len(swipes),
        "swipes_opened": len(opened),
        "swipes_refused": len(swipes) - len(opened),
        "granted_found": len(granted),
        "denied_found": len(found) - len(granted),
        "opened_and_journaled_in_order": matched,
        "lost": len(opened) - matched,
        "journaled_but_not_opened": len(granted) - matched,
    }


def import_alone(plan: Plan, folder: Path) -> dict[str, Any]:
    """How long a tenant import holds SQLite's write lock with nothing else running: the
    store's own `lock_seconds` (for batches, the longest batch's), for a first import (inserts)
    and a second (updates); in one transaction as `gateway tenants import` writes, and in the
    page's batches; alone and with a door-like writer committing an access event every 250 ms
    meanwhile (events the import must then seal again for their new seqs, inside the lock)."""
    from bench.isolation_loads import tenant_csv
    from gateway.tenant_csv import WEB_BATCH_ROWS, import_tenant_data

    rounds: list[dict[str, Any]] = []
    for batch in (None, WEB_BATCH_ROWS):
        for door in (False, True):
            data_dir = folder / f"alone-{batch}-{int(door)}"
            with Store.open(data_dir, GATEWAY_ID) as store, \
                    Store.open(data_dir, GATEWAY_ID) as other:  # fmt: skip
                seed_synthetic_registry(store, tenants=max(plan.cards // 2, 1), cards_per_tenant=2)
                stop = threading.Event()

                def swipes(store: Store = other, stop: threading.Event = stop) -> None:
                    n = 0
                    while not stop.wait(0.25):
                        store.append_event({**backlog_event(n), "door": "main"})
                        n += 1

                writer = threading.Thread(target=swipes, daemon=True)
                if door:
                    writer.start()
                try:
                    for number in range(2):
                        csv = tenant_csv(plan.import_rows, number)
                        started = time.monotonic()
                        done = import_tenant_data(store, csv, batch=batch)
                        rounds.append({
                            "batch_rows": batch,
                            "door_event_every_250ms": door,
                            "rows": plan.import_rows,
                            "added": done.added,
                            "updated": done.updated,
                            "seconds": round(time.monotonic() - started, 1),
                            "lock_seconds": round(done.lock_seconds, 3),
                        })  # fmt: skip
                        print(rounds[-1], flush=True)
                finally:
                    stop.set()
                    if door:
                        writer.join()
    return {"import_alone": rounds}


@contextmanager
def work_folder(path: str | None) -> Iterator[Path]:
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Plan()
    parser.add_argument("--blocks", type=int, default=defaults.blocks, help="of each kind")
    parser.add_argument("--swipes", type=int, default=defaults.swipes, help="per loaded block")
    parser.add_argument("--quiet-swipes", type=int, default=defaults.quiet_swipes)
    parser.add_argument("--cards", type=int, default=defaults.cards)
    parser.add_argument("--slow", type=int, default=defaults.slow)
    parser.add_argument("--logins", type=int, default=defaults.logins)
    parser.add_argument("--import-rows", type=int, default=defaults.import_rows)
    parser.add_argument("--export-rows", type=int, default=defaults.export_rows)
    parser.add_argument("--backlog", type=int, default=defaults.backlog)
    parser.add_argument("--no-camera", action="store_true")
    parser.add_argument("--load-nice", type=int, default=defaults.load_nice)
    parser.add_argument("--block-cap", type=float, default=defaults.block_cap_s)
    parser.add_argument("--no-lock-probe", action="store_true")
    parser.add_argument(
        "--loads",
        default=",".join(ALL_LOADS),
        help="the loads of a loaded block, comma-separated (default: all of them)",
    )
    parser.add_argument(
        "--import-alone",
        action="store_true",
        help="only measure how long a tenant import holds the write lock with nothing else"
        " running, in this process (saved as NAME_import_alone)",
    )
    parser.add_argument("--dir", default=None, help="work folder (default: temporary)")
    parser.add_argument("--name", default="door_isolation", help="result file name")
    args = parser.parse_args()
    plan = Plan(
        blocks=args.blocks,
        swipes=args.swipes,
        quiet_swipes=args.quiet_swipes,
        cards=args.cards,
        slow=args.slow,
        logins=args.logins,
        import_rows=args.import_rows,
        export_rows=args.export_rows,
        backlog=args.backlog,
        camera=None if args.no_camera else defaults.camera,
        load_nice=args.load_nice,
        block_cap_s=args.block_cap,
        lock_probe=not args.no_lock_probe,
        loads=tuple(name for name in args.loads.split(",") if name in ALL_LOADS),
    )
    # SIGTERM unwinds like Ctrl-C, so everything started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = machine()
    if args.import_alone:
        with work_folder(args.dir) as folder:
            alone = import_alone(plan, folder)
        save(f"{args.name}_import_alone", {"machine": started, **alone})
        return

    def checkpoint(so_far: dict[str, Any]) -> None:
        path = RESULTS / f"{args.name}.json"
        path.write_text(json.dumps({"machine": started, **so_far}, indent=2) + "\n")

    with work_folder(args.dir) as folder:
        result = run(plan, folder, checkpoint)
    save(
        args.name, {"machine": started, "load_1min_at_end": round(os.getloadavg()[0], 2), **result}
    )


if __name__ == "__main__":
    main()
