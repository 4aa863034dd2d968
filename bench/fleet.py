"""Fleet: the real uplink code in thousands of simulated gateways against one Mosquitto here.

Worker processes each run one `cloud_sync` `Runner` with many real `UplinkSession`s (one per
gateway, each with its own in-memory journal); the central consumer stores every event in
SQLite and acks it on `P/ack`. Measured: time until every gateway is connected, the broker's
CPU and memory, end-to-end latency (event made at the gateway → stored by the consumer, and →
the covering ack back at the gateway), the consumer's ingest rate, events lost (must be 0) and
sent twice.

    .venv/bin/python -m bench.fleet --gateways 7024 --rate 16 --peak 160
    .venv/bin/python -m bench.fleet --quick              # 500 gateways, 20 s phases
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import fleet_consumer as consumer
from bench._common import machine, percentiles, save
from bench.fleet_worker import rss_kib, serve
from tests.cloud.broker import Broker

TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux
# PlatformStats counters reported per second for each window.
COUNTERS = ("received", "stored", "duplicates", "statuses", "batches", "acks_sent")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does."""

    gateways: int
    rate: float  # fleet-wide events per second, the city's average
    peak: float  # and at peak
    seconds: float  # per load phase
    brokers: int = 1
    consumers: int = 1  # instances per broker, one shared subscription group
    per_worker: int = 1500
    connect_rate: float = 0.0  # sessions handed to the runners per second, 0: as fast as they go
    # Fleet-wide: sessions waiting for their CONNACK at once. Mosquitto 2.0 listens with a
    # backlog of 100; past it the kernel drops handshakes and the clients' retransmissions
    # (1 s, 2 s, 4 s...) outlast the 10 s connect timeout.
    connecting: int = 100
    idle_seconds: float = 10.0
    backlog_events: int = 0  # made while the consumers are down, to time their catch-up
    backlog_seconds: float = 20.0  # ... over this long
    seed: int = 1
    keepalive: int = 30
    ack_timeout: float = 60.0  # UplinkSettings' default


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the most the process ever had resident."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(slots=True)
class Probe:
    """CPU share and memory of groups of processes over one window, the consumers' counters,
    and how busy the whole machine was (other jobs share it)."""

    pids: dict[str, Callable[[], list[int]]]  # read again at each window: consumers restart
    counters: Callable[[], dict[str, int]] = dict
    started: float = 0.0
    cpu: dict[int, float] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)
    consumed: dict[str, int] = field(default_factory=dict)

    def begin(self) -> None:
        self.started = time.monotonic()
        self.cpu = {pid: cpu_seconds(pid) for group in self.pids.values() for pid in group()}
        self.machine = machine_busy()
        self.consumed = self.counters()

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        busy, total = machine_busy()
        out: dict[str, Any] = {
            "seconds": round(wall, 1),
            "machine_busy_percent_of_all_cpus": round(
                100 * (busy - self.machine[0]) / max(1, total - self.machine[1]), 1),
            "load_1min": round(os.getloadavg()[0], 2),
        }
        consumed = self.counters()
        out["consumer_counters_per_second"] = {
            k: round((v - self.consumed.get(k, 0)) / wall, 1) for k, v in consumed.items()
            if k in COUNTERS}
        for name, pids in self.pids.items():
            group = pids()
            used = sum(cpu_seconds(pid) - self.cpu[pid] for pid in group)
            out[name] = {"cpu_percent": round(100 * used / wall, 1),
                         "rss_mib": round(sum(rss_kib(pid) for pid in group) / 1024, 1)}
        return out


class Fleet:
    """The worker processes of a run, and their pipes."""

    def __init__(self, plan: Plan, brokers: list[Broker]) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.sizes: list[int] = []
        workers = max(len(brokers), -(-plan.gateways // plan.per_worker))
        workers += (-workers) % len(brokers)  # the same number of workers on each broker
        first = 0
        settings = {"keepalive": plan.keepalive, "ack_timeout": plan.ack_timeout}
        for n in range(workers):
            count = plan.gateways // workers + (1 if n < plan.gateways % workers else 0)
            broker = brokers[n % len(brokers)]
            parent, child = context.Pipe()
            process = context.Process(
                target=serve, name=f"fleet-worker-{n}", daemon=True,
                args=(child, broker.host, broker.port, first, count, plan.seed + n, settings),
            )  # fmt: skip
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
            self.sizes.append(count)
            first += count
        self.built = [pipe.recv() for pipe in self.pipes]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def ask(self, name: str, args: dict[str, Any] | None = None,
            share: Callable[[int], dict[str, Any]] | None = None) -> list[Any]:  # fmt: skip
        """Send a command to every worker (`share(n)` gives worker n its own args)."""
        for n, pipe in enumerate(self.pipes):
            pipe.send((name, share(n) if share else (args or {})))
        answers = [pipe.recv() for pipe in self.pipes]
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return answers

    def total(self, key: str) -> int:
        return int(sum(p[key] for p in self.ask("progress")))

    def set_rate(self, phase: str, events_per_second: float) -> None:
        """Split the fleet rate over the workers by their number of gateways."""
        gateways = self.plan.gateways
        self.ask("rate", share=lambda n: {
            "phase": phase, "events_per_second": events_per_second * self.sizes[n] / gateways})

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop", {}))
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if pipe.poll(90):
                pipe.recv()
            process.join(10)
            if process.is_alive():
                process.kill()


TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts")


def tcp_counters() -> dict[str, int]:
    """Machine-wide TCP counters that show a broker's accept queue overflowing."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()
             if line.startswith("TcpExt:")]
    counters = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return {name: counters.get(name, 0) for name in TCP_COUNTERS}


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


@contextmanager
def brokers_running(folder: Path, count: int) -> Iterator[list[Broker]]:
    """`count` Mosquittos, each with its own port, config, persistence and log file."""
    with ExitStack() as stack:
        brokers = []
        for n in range(count):
            broker = Broker(
                folder / f"broker-{n}",
                # Every event of a consumer that is down must wait for it; and no silent drop.
                max_queued_messages=1_000_000, max_inflight_messages=1000,
                extra_config="max_connections -1\nset_tcp_nodelay true",
            )
            brokers.append(stack.enter_context(broker))
        yield brokers


def run(plan: Plan, folder: Path) -> dict[str, Any]:
    """One run of `plan` with its brokers, consumers and databases under `folder`."""
    result: dict[str, Any] = {"plan": asdict(plan)}
    with brokers_running(folder, plan.brokers) as brokers, ExitStack() as stack:
        db_path = folder / "platform" / "platform.db"
        instances = [
            stack.enter_context(consumer.Instance(broker, db_path, f"platform-{b}-{n}"))
            for b, broker in enumerate(brokers) for n in range(plan.consumers)
        ]
        for instance in instances:
            instance.wait_ready()
        broker_pids = [b.process.pid for b in brokers if b.process is not None]
        result["broker_rss_kib_empty"] = sum(rss_kib(pid) for pid in broker_pids)
        fleet = Fleet(plan, brokers)
        try:
            result.update(_drive(plan, fleet, instances, broker_pids,
                                 result["broker_rss_kib_empty"]))
        finally:
            fleet.stop()
    # The consumers have stopped: every event they received is in the database.
    result["events"].update(_stored_figures(db_path, result.pop("_windows"), result["_last_seq"]))
    del result["_last_seq"]
    result["consumer_stats"] = {i.client_id: i.counters() for i in instances}
    result["consumer_db"] = consumer.db_sizes(db_path)
    result["broker_log_warnings"] = [
        line for b in brokers for line in b.log().splitlines()
        if "rror" in line or "arning" in line][:20]
    # Why a consumer lost its connection, from both ends.
    result["broker_log_platform"] = [
        line for b in brokers for line in b.log().splitlines()
        if "platform-" in line and "New client" not in line][:40]
    result["consumer_log_warnings"] = [
        line for i in instances for line in i.log().splitlines()
        if "WARNING" in line or "ERROR" in line][:40]
    return result


def _drive(plan: Plan, fleet: Fleet, instances: list[consumer.Instance],
           broker_pids: list[int], empty_broker_kib: int) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"workers": len(fleet.processes)}
    probe_pids: dict[str, Callable[[], list[int]]] = {
        "broker": lambda: broker_pids, "workers": lambda: fleet.pids,
        "consumers": lambda: [i.pid for i in instances]}

    def counters() -> dict[str, int]:
        summed: dict[str, int] = defaultdict(int)
        for instance in instances:
            for name, value in instance.counters().items():
                summed[name] += value
        return summed

    # Connect every gateway.
    probe = Probe(probe_pids, counters)
    probe.begin()
    tcp_before = tcp_counters()
    started = time.monotonic()
    fleet.ask("ramp", share=lambda n: {
        "per_second": plan.connect_rate * fleet.sizes[n] / plan.gateways,
        "connecting_max": max(1, plan.connecting * fleet.sizes[n] // plan.gateways)})
    curve: list[tuple[float, int]] = []

    def all_connected() -> bool:
        count = fleet.total("ever_connected")
        curve.append((round(time.monotonic() - started, 2), count))
        return count >= plan.gateways

    connected = wait_until(all_connected, timeout=max(120.0, plan.gateways / 50), every=0.5)
    out["connect"] = {
        "all_connected": connected,
        "progress": curve[:: max(1, len(curve) // 40)] + curve[-1:],
        "during": probe.end(),
        "tcp_counters_machine_wide": {
            k: v - tcp_before.get(k, 0) for k, v in tcp_counters().items()},
    }
    if not connected:
        raise RuntimeError(f"only {curve[-1][1]} of {plan.gateways} gateways connected")

    # Quiet: every gateway connected, no events.
    probe.begin()
    time.sleep(plan.idle_seconds)
    out["idle"] = probe.end()
    out["idle"]["connected_now"] = fleet.total("connected_now")
    out["idle"]["broker_kib_per_connection"] = round(
        (sum(rss_kib(pid) for pid in broker_pids) - empty_broker_kib) / plan.gateways, 2)

    # The load phases.
    windows: dict[str, tuple[float, float]] = {}
    for phase, rate in (("average", plan.rate), ("peak", plan.peak)):
        probe.begin()
        begun = time.time()
        fleet.set_rate(phase, rate)
        time.sleep(plan.seconds)
        fleet.set_rate(phase, 0)
        windows[phase] = (begun, time.time())
        out[phase] = probe.end()
        out[phase]["events_per_second_target"] = rate
        drained = wait_until(lambda: _drained(fleet), timeout=60)
        out[phase]["drained"] = drained

    # Backlog: the consumers are down while the gateways send, then catch up.
    if plan.backlog_events:
        out["backlog"] = _backlog(plan, fleet, instances, Probe(probe_pids, counters), windows)

    reports = fleet.ask("report")
    out["connect"].update(_connect_figures(reports, started, plan.gateways))
    out["events"] = _gateway_figures(reports, windows)
    out["_windows"] = windows
    out["_last_seq"] = {g: n for r in reports for g, n in r["last_seq"].items()}
    out["worker_rss_mib"] = [round(r["rss_kib"] / 1024, 1) for r in reports]
    out["worker_rss_kib_per_session"] = round(
        sum(r["rss_kib"] - b["rss_kib_empty"] for r, b in zip(reports, fleet.built, strict=True))
        / plan.gateways, 1)
    out["broker_rss_mib"] = round(sum(rss_kib(pid) for pid in broker_pids) / 1024, 1)
    out["broker_peak_rss_mib"] = round(sum(peak_rss_kib(pid) for pid in broker_pids) / 1024, 1)
    out["consumer_rss_mib"] = [round(rss_kib(i.pid) / 1024, 1) for i in instances]
    return out


def _drained(fleet: Fleet) -> bool:
    progress = fleet.ask("progress")
    return bool(sum(p["acked"] for p in progress) >= sum(p["generated"] for p in progress))


def _backlog(plan: Plan, fleet: Fleet, instances: list[consumer.Instance],
             probe: Probe, windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
    for instance in instances:
        instance.pause()
    made_before = fleet.total("generated")
    begun = time.time()
    fleet.set_rate("backlog", plan.backlog_events / plan.backlog_seconds)
    wait_until(lambda: fleet.total("generated") - made_before >= plan.backlog_events,
               timeout=plan.backlog_seconds * 5)
    fleet.set_rate("backlog", 0)
    made = fleet.total("generated") - made_before
    # Every event at the broker before the consumers come back.
    wait_until(lambda: all(p["connected_now"] for p in fleet.ask("progress")), timeout=5)
    time.sleep(1)
    resumed = time.time()
    for instance in instances:
        instance.start()
    probe.begin()
    for instance in instances:
        instance.wait_ready()
    drained = wait_until(lambda: _drained(fleet), timeout=300)
    windows["backlog"] = (begun, time.time())
    out = probe.end()
    out.update({"events": made, "drained": drained, "resumed_at": resumed})
    return out


def _connect_figures(reports: list[dict[str, Any]], started: float, gateways: int,
                     ) -> dict[str, Any]:  # fmt: skip
    times = sorted(t - started for r in reports for t in r["first_connected_at"] if t is not None)
    out: dict[str, Any] = {
        "connected": len(times),
        "connect_failures": sum(r["connect_failures"] for r in reports),
        "disconnects": sum(r["disconnects"] for r in reports),
    }
    if times:
        for share in (0.5, 0.9, 1.0):
            out[f"seconds_to_{int(share * 100)}_percent"] = round(
                times[min(len(times) - 1, int(share * gateways) - 1)], 2)
        out["connects_per_second"] = round(len(times) / max(times[-1], 1e-9), 0)
    return out


def _gateway_figures(reports: list[dict[str, Any]], windows: dict[str, tuple[float, float]],
                     ) -> dict[str, Any]:  # fmt: skip
    """What the gateways saw: events sent (again), and each event's ack round trip."""
    acked: dict[str, list[float]] = defaultdict(list)
    for report in reports:
        for phase, made, at in report["acked"]:
            acked[phase].append((at - made) * 1000)
    made_total = sum(n for r in reports for n in r["last_seq"].values())
    published = sum(r["published"] for r in reports)
    return {
        "made": made_total,
        "published": published,
        "published_again": published - made_total,
        "resent_after_ack_timeout": sum(r["resent"] for r in reports),
        "refused": sum(r["refused"] for r in reports),
        "acks_received": sum(r["acks"] for r in reports),
        "last_errors": sorted({e for r in reports for e in r["last_errors"]})[:10],
        "phases": {phase: {"made_to_acked_at_gateway_ms": percentiles(acked[phase])}
                   for phase in windows},
    }


def _stored_figures(db_path: Path, windows: dict[str, tuple[float, float]],
                    last_seq: dict[str, int]) -> dict[str, Any]:
    """What the consumers stored: every event made must be there once; latency; ingest rate."""
    seqs: dict[str, set[int]] = defaultdict(set)
    written_at: dict[str, list[float]] = defaultdict(list)
    to_received: dict[str, list[float]] = defaultdict(list)
    to_stored: dict[str, list[float]] = defaultdict(list)
    rows = 0
    for gateway, seq, made, got, written in consumer.stored(db_path):
        rows += 1
        seqs[gateway].add(seq)
        for phase, (begun, ended) in windows.items():
            if begun <= made <= ended:
                to_received[phase].append((got - made) * 1000)
                to_stored[phase].append((written - made) * 1000)
                written_at[phase].append(written)
                break
    lost = sum(1 for g, last in last_seq.items() for s in range(1, last + 1) if s not in seqs[g])
    phases: dict[str, Any] = {}
    for phase in windows:
        times = sorted(written_at[phase])
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        phases[phase] = {
            "events_stored": len(times),
            "made_to_received_ms": percentiles(to_received[phase]),
            "made_to_stored_ms": percentiles(to_stored[phase]),
            "ingest_events_per_second": round(len(times) / span, 1) if span else None,
        }
    return {
        "stored": rows,
        "lost": lost,
        "stored_but_never_made": sum(
            1 for g, found in seqs.items() for s in found if s > last_seq.get(g, 0)),
        "duplicates_dropped_by_consumer": consumer.duplicates(db_path),
        "stored_phases": phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=7024)
    parser.add_argument("--rate", type=float, default=16.0, help="fleet events/s, average")
    parser.add_argument("--peak", type=float, default=160.0, help="fleet events/s, peak")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--consumers", type=int, default=1, help="instances per broker")
    parser.add_argument("--per-worker", type=int, default=1500, help="sessions per process")
    parser.add_argument("--connect-rate", type=float, default=0.0,
                        help="sessions started per second, fleet-wide (0: as fast as they go)")
    parser.add_argument("--connecting", type=int, default=100,
                        help="fleet-wide cap on sessions waiting for their CONNACK")
    parser.add_argument("--idle", type=float, default=40.0,
                        help="seconds with every gateway connected and no event (keepalive"
                             " pings start 30 s after connecting)")
    parser.add_argument("--backlog", type=int, default=0,
                        help="events made while the consumers are down, to time the catch-up")
    parser.add_argument("--ack-timeout", type=float, default=60.0,
                        help="the sessions' ack_timeout (UplinkSettings; 60 s by default)")
    parser.add_argument("--quick", action="store_true", help="500 gateways, 20 s phases")
    parser.add_argument("--name", default="", help="result file bench/results/NAME.json")
    args = parser.parse_args()
    if args.quick:
        args.gateways, args.seconds = min(args.gateways, 500), min(args.seconds, 20.0)
    plan = Plan(gateways=args.gateways, rate=args.rate, peak=args.peak, seconds=args.seconds,
                brokers=args.brokers, consumers=args.consumers, per_worker=args.per_worker,
                connect_rate=args.connect_rate, backlog_events=args.backlog,
                connecting=args.connecting, ack_timeout=args.ack_timeout,
                idle_seconds=min(args.idle, 5.0) if args.quick else args.idle)  # fmt: skip
    name = args.name or f"fleet_{args.gateways}"
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        result = run(plan, Path(tmp))
    save(name, {"machine": info, **result})


if __name__ == "__main__":
    main()
