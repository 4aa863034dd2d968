"""Running the parts: one part in this process (`gateway run --part NAME`, what each systemd
unit does), or all of them as child processes (`gateway run`, for a foreground run, the demo
and the tests).

A part pings systemd's watchdog only while its own health report is clean, and writes that
report to the runtime folder every second, where the web part reads it for /healthz. Under
the supervisor, a child that exits, or whose report stays failing or stale for
`RESTART_AFTER_S`, is restarted on its own, as systemd does with the units: the door keeps
working while the web or the uplink is restarted.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import logging.handlers
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.config import Config
from gateway.parts.findings import said
from gateway.parts.runtime import DOOR_NICE, STALE_SECONDS, Runtime
from gateway.sdnotify import Notifier

log = logging.getLogger(__name__)

PART_NAMES = ("door", "camera", "uplink", "web", "edge")
TICK_SECONDS = 0.2
HEALTH_SECONDS = 1.0
# The units' WatchdogSec: a part failing this long is restarted.
RESTART_AFTER_S = 30.0
# How long a new child may take before its first health report counts as missing.
START_GRACE_S = 60.0
STOP_TIMEOUT_S = 15.0
# Log lines waiting for the writer thread; more are dropped (and counted) rather than waited on.
LOG_BACKLOG = 10_000


class Part(Protocol):
    """What `run_part` needs of a part."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def tick(self) -> None: ...
    def health(self) -> dict[str, Any]: ...


def make_part(name: str, config: Config, runtime: Runtime) -> Part:
    """The part called `name` for this configuration."""
    if name == "door":
        from gateway.parts.door import DoorPart

        return DoorPart(config, runtime)
    if name == "camera":
        from gateway.parts.camera import CameraPart

        return CameraPart(config, runtime)
    if name == "uplink":
        from gateway.parts.uplink import UplinkPart

        return UplinkPart(config, runtime)
    if name == "web":
        from gateway.parts.web import WebPart

        return WebPart(config, runtime)
    if name == "edge":
        from gateway.parts.edge import EdgePart

        return EdgePart(config, runtime)
    raise ValueError(f"no part named {name!r}")


def part_health(part: Part) -> dict[str, Any]:
    """The part's own report (the web part's without the other parts')."""
    own = getattr(part, "own_health", None)
    report: dict[str, Any] = own() if own is not None else part.health()
    return report


def run_part(name: str, config: Config, *, stop: threading.Event | None = None) -> int:
    """Run one part until SIGTERM or SIGINT (or `stop`); speaks sd_notify when asked."""
    _end_with_supervisor(name)
    with logs_written_by_a_thread():
        return _run(name, config, stop)


def _run(name: str, config: Config, stop: threading.Event | None) -> int:
    runtime = Runtime.for_config(config)
    part = make_part(name, config, runtime)
    stop = stop if stop is not None else threading.Event()
    previous = _on_signals(lambda: stop.set())
    notifier = Notifier()
    try:
        part.start()
        notifier.notify(f"READY=1\nSTATUS=the {name} part is running")
        watchdog = notifier.watchdog_interval()
        last_ping = last_report = float("-inf")
        while not stop.wait(TICK_SECONDS):
            part.tick()
            now = time.monotonic()
            if now - last_report < HEALTH_SECONDS:
                continue
            last_report = now
            report = part_health(part)
            runtime.write_health(name, report)
            if watchdog is None or now - last_ping < watchdog:
                continue
            # Ping only when healthy: a stuck part is restarted by systemd.
            if report["status"] == "ok":
                notifier.notify("WATCHDOG=1")
                last_ping = now
            else:
                log.error("not pinging the watchdog: %s",
                          "; ".join(said(item, "en") for item in report["problems"]))  # fmt: skip
        notifier.notify("STOPPING=1")
    finally:
        part.stop()
        runtime.clear_health(name)
        _restore_signals(previous)
    return 0


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Hands a record to the writer thread; never waits: a full backlog drops and counts."""

    def __init__(self, backlog: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(backlog)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


@contextlib.contextmanager
def logs_written_by_a_thread(backlog: int = LOG_BACKLOG) -> Iterator[_DroppingQueueHandler]:
    """Write the root logger's lines from a thread of their own while this block runs.

    The door logs every access; a line written on the door's own thread would wait for
    journald (or a full pipe) with the relay still to switch. Records are formatted on the
    caller's side (`QueueHandler.prepare`), written in order by the thread, and the lines
    dropped when the writer falls `backlog` lines behind are counted in one warning at the end.
    """
    root = logging.getLogger()
    handlers = list(root.handlers)
    records: queue.Queue[logging.LogRecord | None] = queue.Queue(backlog)
    handler = _DroppingQueueHandler(records)

    def write() -> None:
        while (record := records.get()) is not None:
            for target in handlers:
                if record.levelno >= target.level:
                    target.handle(record)

    writer = threading.Thread(target=write, name="log-writer", daemon=True)
    for old in handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    writer.start()
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        with contextlib.suppress(queue.Full):  # a log stuck for good must not hold the stop
            records.put(None, timeout=STOP_TIMEOUT_S)
        writer.join(STOP_TIMEOUT_S)
        for old in handlers:
            root.addHandler(old)
        if handler.dropped:
            log.warning("%d log lines dropped: the log writer fell behind", handler.dropped)


SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


# Under the supervisor, the parts yield the CPU to the door as their units' Nice= make them
# (systemd/rental-gateway@PART.service.d); the door's own -5 needs root, the others do not.
SUPERVISED_NICE = {"door": DOOR_NICE, "uplink": 0, "web": 5, "edge": 5, "camera": 10}


def _end_with_supervisor(name: str) -> None:
    """Under `gateway run`, get SIGTERM when the supervisor dies (even by SIGKILL), so no part
    outlives it holding a serial line or a socket; and take the part's niceness."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return
    nice = SUPERVISED_NICE.get(name, 0)
    try:  # absolute, as the unit's Nice= is: not relative to how the supervisor was started
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:  # raising a priority needs root (CAP_SYS_NICE): keep our own
        log.info("part %s keeps niceness %d (not allowed to take %d)", name, os.nice(0), nice)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != int(supervisor):  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _on_signals(handler: Callable[[], None]) -> dict[int, Any]:
    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        handler()

    return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


# ---------------------------------------------------------------------------- supervisor


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    unhealthy_since: float | None = None
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0
    log_lines: list[str] = field(default_factory=list)


class Supervisor:
    """Every part of the gateway as a child process of this one."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        *,
        parts: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        """`log`: a file for the parts' output (default: this process's stdout and stderr)."""
        from gateway.parts.web import expected_parts

        self.config = config
        self.config_path = config_path
        self._log = log
        self.runtime = Runtime.for_config(config)
        names = parts if parts is not None else expected_parts(config)
        self.children = {name: _Child(name) for name in names}
        # check() (a watch thread) and stop() never interleave, and nothing restarts a part
        # once stop() began: a part spawned during the stop would outlive its supervisor.
        self._lock = threading.Lock()
        self._stopping = False
        self._env = {**os.environ, **(extra_env or {}), SUPERVISOR_ENV: str(os.getpid())}
        # Children must not speak to systemd: this process does.
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            self._env.pop(key, None)

    def command(self, name: str) -> list[str]:
        """The command line that runs part `name`; verbose (`-v`) when this process is."""
        verbose = ["-v"] if logging.getLogger().isEnabledFor(logging.DEBUG) else []
        return [sys.executable, "-m", "gateway", *verbose, "-c", str(self.config_path), "run",
                "--part", name]  # fmt: skip

    def start(self) -> None:
        """Start every part, the door first; return once each reported (or its grace ran out)."""
        self._stopping = False
        for child in self.children.values():
            self._spawn(child)
            self.wait_ready(child.name, timeout=START_GRACE_S)

    def wait_ready(self, name: str, timeout: float) -> bool:
        """Wait until part `name` has written a health report."""
        deadline = time.monotonic() + timeout
        child = self.children[name]
        while time.monotonic() < deadline:
            report = self.runtime.read_health(name)
            if report is not None and child.process is not None \
                    and report.get("pid") == child.process.pid:  # fmt: skip
                return True
            if child.process is not None and child.process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def _spawn(self, child: _Child) -> None:
        self.runtime.clear_health(child.name)
        out = None if self._log is None else self._log.open("ab")
        try:
            child.process = subprocess.Popen(self.command(child.name), env=self._env,  # noqa: S603
                                             stdout=out, stderr=out)  # fmt: skip
        finally:
            if out is not None:
                out.close()
        child.started = time.monotonic()
        child.unhealthy_since = None
        log.info("part %s started (pid %d)", child.name, child.process.pid)

    def check(self) -> bool:
        """Restart the parts that died or stayed unhealthy; True while every part is healthy."""
        with self._lock:
            return False if self._stopping else self._check()

    def _check(self) -> bool:
        now = time.monotonic()
        healthy = True
        for child in self.children.values():
            process = child.process
            if process is None or process.poll() is not None:
                healthy = False
                if process is not None:
                    log.error("part %s exited with %s", child.name, process.returncode)
                    child.process = None
                    child.next_start = now + child.backoff
                    child.backoff = min(child.backoff * 2, 10.0)
                if now >= child.next_start:
                    child.restarts += 1
                    self._spawn(child)
                continue
            report = self.runtime.read_health(child.name, stale_seconds=STALE_SECONDS)
            ok = report is not None and report.get("pid") == process.pid \
                and report.get("status") == "ok"  # fmt: skip
            if ok:
                child.unhealthy_since = None
                child.backoff = 1.0
                continue
            healthy = False
            if now - child.started < START_GRACE_S and report is None:
                continue
            child.unhealthy_since = child.unhealthy_since or now
            if now - child.unhealthy_since >= RESTART_AFTER_S:
                log.error("part %s unhealthy for %.0f s: killing it", child.name,
                          now - child.unhealthy_since)  # fmt: skip
                process.kill()
        return healthy

    def stop(self) -> None:
        """SIGTERM every part, the web first and the door last; SIGKILL what lingers."""
        with self._lock:
            self._stopping = True
            self._stop()

    def _stop(self) -> None:
        for child in reversed(list(self.children.values())):
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
                try:
                    child.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
            child.process = None


def run_supervisor(config: Config, config_path: Path) -> int:
    """`gateway run`: every part, each in its own process, until SIGTERM or SIGINT."""
    supervisor = Supervisor(config, config_path)
    stop = threading.Event()
    previous = _on_signals(lambda: stop.set())
    notifier = Notifier()
    try:
        supervisor.start()
        notifier.notify(f"READY=1\nSTATUS=running {', '.join(supervisor.children)}")
        watchdog = notifier.watchdog_interval()
        last_ping = float("-inf")
        while not stop.wait(1.0):
            supervisor.check()
            now = time.monotonic()
            # This process's own liveness: it restarts its children itself.
            if watchdog is not None and now - last_ping >= watchdog:
                notifier.notify("WATCHDOG=1")
                last_ping = now
        notifier.notify("STOPPING=1")
    finally:
        supervisor.stop()
        _restore_signals(previous)
    return 0
