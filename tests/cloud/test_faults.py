"""Every event reaches the platform once while the network, broker, gateway, platform and
database fail.

The real things, each in its own process where a SIGKILL must be possible:

- the gateway: `tests/cloud/gateway_proc.py`, the real `Store` and `Uplink` making access events
  at 50 a second, connected through a `FaultProxy` (cut: every connection reset; partition:
  nothing flows for 1–4 s, then heal), SIGKILLed and started again on the same data folder;
- Mosquitto (`Broker`) with persistence on and the default `autosave_interval` of 1800 s: a run
  lasts far less, so a SIGKILLed broker forgets every session, subscription and queued message
  since it started. Only the platform's `P/ack` ends an event's pending life, so the gateway
  must send those events again. It logs every PUBLISH it sends (`log_type debug`): what it
  delivered to the platform is counted from its log;
- two platform instances, `python -m rental_platform run`, in one shared-subscription group on
  one PostgreSQL 15 database (in the tests' throwaway cluster, `tests/postgres.py`), connected
  straight to the broker; either is SIGKILLed (now and then both) and started again;
- PostgreSQL itself, SIGKILLed (postmaster and every backend) and started again on the same
  port: crash recovery under running instances, whose writers keep their batch and retry. An
  instance that starts while the database is away exits 1 saying so (docs/platform.md); the
  test is its supervisor, as systemd's `Restart=on-failure` would be, and starts it again.

Each run draws at least ten faults from a seeded random generator, one every 0.5–1.5 s (every
kind at least once; a third of the partitions also have a kill inside them) while events keep being
made. Then it stops making events, waits until the gateway's ack watermark reaches its last
seq, stops the gateway and the instances cleanly, and compares the platform's database with the
gateway's journal: the same seqs, each stored once, with the exact bytes journaled, the saved
watermark at the last seq; and duplicates really came and were dropped: the platform counted
some, and no more than the broker delivered beyond one per event. Per-run figures are printed
(`pytest -s`); nothing is timed.

A last test kills the gateway while it sends a backlog of 5,000 events journaled during an
outage, and checks that, started again, it resends from its saved ack watermark; its one
instance stores into a SQLite file, the embedded default (the platform's own tests run on both
engines).

The gateway's ack timeout is 5 s here (production: 60 s, not a config key): events a restarted
broker accepted before the instances had subscribed again go nowhere, and only that timeout
sends them again. Keepalive is the config's minimum, 5 s.
"""

from __future__ import annotations

import json
import random
import select
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text
from cloud_sync.uplink import UplinkSession, UplinkSettings

from ..postgres import PostgresCluster
from .broker import Broker
from .mqtt import MqttProbe
from .procs import ConsumerProcess, GatewayProcess, PlatformDatabase, settled, wait_until
from .proxy import FaultProxy

GW = "gw-test-0001"
EVENTS_TOPIC = f"rental/v1/{GW}/events"
SEEDS = (11, 23, 37, 41, 59)
KINDS = ("proxy_cut", "proxy_partition", "broker_kill", "gateway_kill", "platform_kill",
         "postgres_kill")
KILLS = ("broker_kill", "gateway_kill", "platform_kill", "postgres_kill")
INSTANCES = ("platform-a", "platform-b")
RATE = 50.0  # events a second
ACK_TIMEOUT = 5.0
MIN_FAULTS = 10


@dataclass
class RunFigures:
    """What one run did; printed per run and summed at the end."""

    name: str
    events: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # received by the platform and dropped (its gateways.duplicates)
    delivered: int = 0  # event publishes the broker sent to the instances (its log)
    published: int = 0  # publishes over all gateway lives (their last progress lines)
    timeout_resends: int = 0  # of which sent again after an ack timeout
    seconds: float = 0.0
    drain_seconds: float = 0.0  # from "no more events" to every event acked
    timeline: list[str] = field(default_factory=list)  # when each fault began
    restarts: int = 0  # instances that exited, the database away as they started

    @property
    def resent(self) -> int:
        """Publishes beyond one per event: at least this many (a killed life's last few
        publishes after its last progress line are not counted)."""
        return max(0, self.published - self.events)

    def line(self) -> str:
        kinds = " ".join(f"{kind}={self.faults[kind]}" for kind in KINDS)
        return (f"{self.name}: {self.events} events, {sum(self.faults.values())} faults"
                f" ({kinds}), {self.duplicates} duplicates dropped of {self.delivered}"
                f" deliveries to the platform, resent >= {self.resent}"
                f" ({self.published} publishes, {self.timeout_resends} after an ack timeout),"
                f" {self.restarts} instances restarted by their supervisor,"
                f" all acked {self.drain_seconds:.1f} s after the last event,"
                f" run {self.seconds:.1f} s\n    faults at: {', '.join(self.timeline)}")


RESULTS: dict[str, RunFigures] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Print every run's figures at the end of the module (shown with `pytest -s`)."""
    yield
    if RESULTS:
        print("\nfault runs:")
        for figures in RESULTS.values():
            print("  " + figures.line())
        print(f"  total: {sum(f.events for f in RESULTS.values())} events,"
              f" {sum(sum(f.faults.values()) for f in RESULTS.values())} faults,"
              f" {sum(f.duplicates for f in RESULTS.values())} duplicates dropped")


def fault_plan(rng: random.Random) -> list[str]:
    """At least MIN_FAULTS faults, every kind at least once, the rest drawn at random."""
    plan = list(KINDS) + [rng.choice(KINDS) for _ in range(MIN_FAULTS - len(KINDS)
                                                           + rng.randrange(3))]
    rng.shuffle(plan)
    return plan


@dataclass
class Faults:
    """Injects faults into one run's broker, proxy, gateway, instances and database server,
    and counts them."""

    rng: random.Random
    broker: Broker
    proxy: FaultProxy
    gateway: GatewayProcess
    platforms: list[ConsumerProcess]
    postgres: PostgresCluster
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    timeline: list[str] = field(default_factory=list)
    restarts: int = 0  # instances the supervisor started again

    def supervise(self) -> bool:
        """Be the instances' supervisor (as systemd's `Restart=on-failure` would be): an
        instance started while PostgreSQL was away exits 1 saying so (docs/platform.md), and is
        started again. Any other exit fails the run. False, so that `supervise() or ...`
        reads as a step of a wait."""
        for platform in self.platforms:
            if platform.process is None or platform.running:
                continue
            said = f"rental-platform: {platform.database.url}: "
            why = f"{platform.client_id} exited:\n{platform.log_tail(60)}"
            assert platform.process.returncode == 1, why
            assert said in platform.log_tail(3), why
            self.restarts += 1
            self.timeline.append(f"{time.monotonic() - self.started:.1f}s"
                                 f" {platform.client_id} restarted by its supervisor")
            platform.start()
        return False

    def inject(self, kind: str) -> None:
        """One fault, over when this returns (partition healed, process started again).

        A third of the partitions have a kill in the middle of them: a gateway, broker,
        instance or database dying while the network is down is the case with stale
        connections held.
        """
        self.counts[kind] += 1
        self.timeline.append(f"{time.monotonic() - self.started:.1f}s {kind}")
        if kind == "proxy_cut":
            self.proxy.cut()
        elif kind == "proxy_partition":
            self.proxy.partition()
            hold = self.rng.uniform(1.0, 4.0)
            self.timeline[-1] += f" {hold:.1f}s"
            if self.rng.random() < 1 / 3:
                during = self.rng.choice(KILLS)
                time.sleep(hold / 2)
                self.inject(during)
                time.sleep(hold / 2)
            else:
                time.sleep(hold)
            self.proxy.heal()
        elif kind == "broker_kill":
            self.broker.restart(kill=True)
        elif kind == "gateway_kill":
            self.gateway.kill()
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.gateway.start()
        elif kind == "platform_kill":
            # Now and then both: no instance left to take the group's messages meanwhile.
            victims = self.platforms if self.rng.random() < 0.25 else [
                self.rng.choice(self.platforms)]
            self.timeline[-1] += " " + "+".join(v.client_id for v in victims)
            for victim in victims:
                victim.kill()
            time.sleep(self.rng.uniform(0.0, 0.5))
            for victim in victims:
                victim.start()
        elif kind == "postgres_kill":
            self.postgres.kill()
            try:
                time.sleep(self.rng.uniform(0.0, 1.0))
            finally:
                self.postgres.start()
        else:
            raise AssertionError(kind)


def diagnostics(gateway: GatewayProcess, platforms: Sequence[ConsumerProcess],
                broker: Broker) -> str:  # fmt: skip
    acked, last = gateway.watermark()
    database = platforms[0].database
    text = (f"gateway saved ack {acked}, last seq {last}; platform {database.gateway_row(GW)}\n"
            f"--- gateway log ---\n{gateway.log_tail()}\n")
    for platform in platforms:
        text += f"--- {platform.client_id} log ---\n{platform.log_tail()}\n"
    return text + "--- broker log ---\n" + "\n".join(broker.log().splitlines()[-30:])


def deliveries(broker: Broker) -> int:
    """Event publishes the broker sent to platform instances over all its lives (its log,
    `log_type debug`): every one, those sent again to a session after a reconnect included."""
    return sum(1 for line in broker.log().splitlines()
               if "Sending PUBLISH to platform-" in line and f"'{EVENTS_TOPIC}'" in line)


def check_platform_matches_journal(gateway: GatewayProcess, database: PlatformDatabase) -> None:
    """Every journaled event stored once, byte for byte, and nothing else."""
    journal = gateway.journal()
    stored = database.stored(GW)
    missing = sorted(set(journal) - set(stored))
    extra = sorted(set(stored) - set(journal))
    assert not missing, f"{len(missing)} events never stored, e.g. {missing[:10]}"
    assert not extra, f"{len(extra)} stored events the gateway never made, e.g. {extra[:10]}"
    rows = database.rows_per_seq(GW)
    assert set(rows.values()) == {1}, {seq: n for seq, n in rows.items() if n != 1}
    changed = [seq for seq, body in journal.items() if stored[seq] != body]
    assert not changed, f"stored bodies differ from the journal's: seqs {changed[:10]}"
    assert database.rejects() == []
    assert database.conflicts() == []
    assert database.gateway_row(GW)["watermark"] == max(journal)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_event_is_stored_once_through_cuts_partitions_and_kills(
    seed: int, tmp_path: Path, postgres: PostgresCluster,
) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    figures = RunFigures(f"seed {seed}")
    key = public_key_text(Ed25519PrivateKey.generate())
    database = PlatformDatabase(postgres.new_database(), tmp_path / "platform")
    with ExitStack() as stack:
        broker = stack.enter_context(Broker(tmp_path / "broker", extra_config="log_type debug"))
        proxy = stack.enter_context(FaultProxy(broker.host, broker.port))
        platforms = [ConsumerProcess(database, broker.host, broker.port, client_id=name,
                                     group="faults") for name in INSTANCES]  # fmt: skip
        for platform in platforms:
            stack.callback(platform.terminate)
        gateway = GatewayProcess(tmp_path / "gateway", proxy.host, proxy.port, public_key=key,
                                 count=int(RATE * 600), rate=RATE, ack_timeout=ACK_TIMEOUT,
                                 seed=seed)
        stack.callback(gateway.terminate)
        for platform in platforms:
            platform.start()
        gateway.start()
        gateway.wait_ready()

        faults = Faults(rng, broker, proxy, gateway, platforms, postgres)
        for kind in fault_plan(rng):
            time.sleep(rng.uniform(0.5, 1.5))  # events keep coming meanwhile
            faults.supervise()
            faults.inject(kind)
        figures.faults = faults.counts
        assert not proxy.partitioned
        assert broker.running
        assert gateway.running
        time.sleep(1.0)

        gateway.stop_making()
        stopped = time.monotonic()
        # The ack watermark moves in memory at once and is saved within seconds, or at a
        # clean stop: wait for the first, stop, then check the saved one.
        acked_all = wait_until(lambda: faults.supervise() or _all_acked(gateway), 120,
                               interval=0.1)  # fmt: skip
        figures.timeline = faults.timeline
        figures.restarts = faults.restarts
        figures.drain_seconds = time.monotonic() - stopped
        assert acked_all, diagnostics(gateway, platforms, broker)
        assert gateway.terminate() == 0, gateway.log_tail()
        for platform in platforms:
            assert platform.terminate() == 0, platform.log_tail()
        acked, last = gateway.watermark()
        assert acked == last, f"saved ack watermark {acked}, last seq {last}"

        figures.events = len(gateway.journal())
        figures.published = gateway.total("published")
        figures.timeout_resends = gateway.total("resent")
        figures.duplicates = database.gateway_row(GW)["duplicates"]
        figures.delivered = deliveries(broker)
        figures.seconds = time.monotonic() - started
        RESULTS[figures.name] = figures
        print("\n" + figures.line())

        check_platform_matches_journal(gateway, database)
        assert sum(figures.faults.values()) >= MIN_FAULTS
        assert set(figures.faults) == set(KINDS)
        assert figures.events >= 300
        # Every run kills the gateway and cuts its link at least once: what it had published
        # and not yet seen acknowledged goes up again, and the platform has most of it. Each
        # duplicate it counted is a delivery beyond the one that stored the event (deliveries
        # to an instance killed before it committed are in neither count). Only a commit whose
        # answer was lost, PostgreSQL killed in the microseconds between its commit and its
        # reply, would count its own events again on the retry.
        assert figures.duplicates > 0, "no duplicate reached the platform: nothing was resent"
        assert figures.duplicates <= figures.delivered - figures.events, (
            f"{figures.duplicates} duplicates counted, but the broker delivered only"
            f" {figures.delivered} publishes of {figures.events} events")


def _all_acked(gateway: GatewayProcess) -> bool:
    """The running gateway's ack watermark (its last progress line) reached its last seq."""
    progress = gateway.progress_of(len(gateway.logs) - 1) or {}
    last = progress.get("last_seq", 0)
    return progress.get("making") == 0 and last > 0 and progress.get("acked") == last


def test_a_gateway_killed_while_sending_a_backlog_resends_from_its_ack_watermark(
    tmp_path: Path,
) -> None:
    """5,000 events queued during an outage; SIGKILL while they go up; nothing lost."""
    key = public_key_text(Ed25519PrivateKey.generate())
    with ExitStack() as stack:
        broker = stack.enter_context(Broker(tmp_path / "broker"))
        proxy = stack.enter_context(FaultProxy(broker.host, broker.port))
        database = PlatformDatabase(str(tmp_path / "platform" / "platform.db"),
                                    tmp_path / "platform")
        consumer = ConsumerProcess(database, broker.host, broker.port)
        stack.callback(consumer.terminate)
        # In service first: 200 events at 100 a second, acknowledged and saved.
        gateway = GatewayProcess(tmp_path / "gateway", proxy.host, proxy.port, public_key=key,
                                 count=200, rate=100.0)
        stack.callback(gateway.terminate)
        probe = MqttProbe.connect(broker)  # sees every event publish the broker routes
        stack.callback(probe.close)
        probe.subscribe(EVENTS_TOPIC)
        # The consumer subscribed before the gateway's first event: a retained status it
        # stores says so (an event published before would go nowhere until an ack timeout).
        probe.publish_wait("rental/v1/gw-ready/status", b'{"state": "online"}', retain=True)
        consumer.start()
        assert wait_until(lambda: database.has_status("gw-ready"), 60), consumer.log_tail()
        gateway.start()
        assert wait_until(lambda: gateway.watermark() == (200, 200), 30), \
            diagnostics(gateway, [consumer], broker)

        # The building's network goes down; 5,000 events are journaled meanwhile.
        proxy.partition()
        gateway.burst()
        assert wait_until(lambda: gateway.watermark()[1] == 5200, 120), gateway.log_tail()
        before_outage = len(_seqs(probe))
        assert before_outage >= 200
        assert set(_seqs(probe)) <= set(range(1, 201)), "events went up during the partition"

        # The network is back: the backlog goes up. Kill the gateway half-way through it.
        proxy.heal()
        assert wait_until(lambda: _count(probe) >= before_outage + 500, 60, 0.005), \
            diagnostics(gateway, [consumer], broker)
        gateway.kill()
        # What was in flight reaches the broker, and the consumer stores all the broker routed.
        routed = settled(lambda: set(_seqs(probe)))  # the broker still routes what was in flight
        assert wait_until(lambda: routed <= set(database.stored(GW)), 60), \
            sorted(routed - set(database.stored(GW)))[:10]
        stored = set(database.stored(GW))
        at_kill = _count(probe) - before_outage
        watermark, last = gateway.watermark()
        assert last == 5200
        assert watermark < 5200, "the backlog was acknowledged before the kill"
        assert at_kill < 5000, "the backlog had gone up before the kill"
        mark = _count(probe)

        gateway.start()  # the same data folder: it makes no new events (count 200 < 5200)
        assert wait_until(lambda: gateway.watermark() == (5200, 5200), 120, 0.2), \
            diagnostics(gateway, [consumer], broker)
        assert gateway.terminate() == 0
        assert consumer.terminate() == 0

        again = _seqs(probe)[mark:]
        duplicates = database.gateway_row(GW)["duplicates"]
        print(f"\nbacklog: killed when {at_kill} of its 5000 events had reached the broker;"
              f" saved ack {watermark}, the platform had {len(stored)} events; restarted, the"
              f" gateway published {len(again)} from seq {again[0]}; {duplicates} duplicates"
              " dropped")

        # Restarted, it starts right above its saved watermark and goes up in seq order. It
        # skips only what the platform acknowledged meanwhile (its ack answers the first
        # duplicates), so nothing above the watermark is left out.
        assert again[0] == watermark + 1
        assert again == sorted(set(again)), "sent out of order or twice after the restart"
        skipped = set(range(watermark + 1, 5201)) - set(again)
        assert skipped <= stored, sorted(skipped - stored)[:10]
        check_platform_matches_journal(gateway, database)
        # Each publish of an event the platform had already was dropped as a duplicate: those
        # after the restart, and any resent before the kill when an ack was late on a loaded
        # machine. (A redelivery by the broker to the consumer counts too, unseen by the probe.)
        published = _seqs(probe)
        resent = len(published) - len(set(published))
        assert duplicates >= resent >= len(stored & set(again)) > 0


def _count(probe: MqttProbe) -> int:
    return len(probe.received(EVENTS_TOPIC))


def _seqs(probe: MqttProbe) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in probe.received(EVENTS_TOPIC)]


class ListJournal:
    """`cloud_sync.uplink.Journal` over a list of events, for driving one session by hand."""

    def __init__(self, count: int) -> None:
        self.events = [json.dumps({"gateway_id": GW, "seq": n}).encode()
                       for n in range(1, count + 1)]
        self.acked = 0

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        start = max(after_seq, self.acked)
        return [(start + 1 + n, body) for n, body in enumerate(self.events[start:start + limit])]

    def acknowledge(self, seq: int) -> None:
        self.acked = max(self.acked, min(seq, len(self.events)))

    def acked_seq(self) -> int:
        return self.acked

    def status(self) -> dict[str, Any]:
        return {"registry_version": None, "queue_depth": len(self.events) - self.acked}


def drive(session: UplinkSession, until: Callable[[], bool], *, pump: bool,
          timeout: float = 10.0) -> None:
    """Be the session's runner on this thread until `until()`: socket I/O, and with `pump`
    also `service()`, the only call besides a CONNACK that publishes events."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out; {session.stats}"
        if pump:
            session.service()
        sock = session.socket()
        if sock is None:
            time.sleep(0.01)
            continue
        writable = [sock] if session.want_write() else []
        readable, writable, _ = select.select([sock], writable, [], 0.02)
        if readable:
            session.on_readable()
        if writable:
            session.on_writable()


def test_events_acknowledged_while_they_wait_in_the_batch_are_not_published(
    broker: Broker,
) -> None:
    """Seen in the backlog test: the gateway sent a whole batch (500) of events the platform
    had acknowledged meanwhile, since the batch read from the journal was published to its end
    whatever the acks said. An ack counts only for seqs sent on the same connection, so here
    the batch is the one read again after an ack timeout."""
    probe = MqttProbe.connect(broker)
    probe.subscribe(EVENTS_TOPIC)
    journal = ListJournal(400)
    now = [0.0]
    session = UplinkSession(UplinkSettings(broker.host, broker.port, GW, window=5, batch=500),
                            journal, clock=lambda: now[0])  # fmt: skip
    try:
        drive(session, lambda: session.connected, pump=True)
        drive(session, lambda: _count(probe) == 400, pump=True)
        now[0] += 61  # past the ack timeout: 1..5 go again, 6..400 wait in the batch
        drive(session, lambda: session.stats.resent > 0, pump=True)
        probe.publish_wait(f"rental/v1/{GW}/ack", b'{"seq": 400}')
        drive(session, lambda: journal.acked == 400 and not session.want_write(), pump=False)
        journal.events += [json.dumps({"gateway_id": GW, "seq": n}).encode()
                           for n in range(401, 406)]  # fmt: skip
        drive(session, lambda: _count(probe) >= 410, pump=True)
    finally:
        session.close()
        probe.close()
    assert _seqs(probe)[400:410] == [1, 2, 3, 4, 5, 401, 402, 403, 404, 405]
