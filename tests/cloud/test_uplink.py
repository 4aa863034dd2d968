"""The uplink session against a real Mosquitto: pending until acked, resend, status, commands."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cloud_sync.backoff import Backoff
from cloud_sync.runner import Runner
from cloud_sync.uplink import TlsFiles, UplinkSession, UplinkSettings

from .broker import Broker
from .mqtt import MqttProbe
from .proxy import FaultProxy

GW = "gw-test-0001"
P = f"rental/v1/{GW}"


class MemoryJournal:
    """The Journal protocol over a list, thread-safe like the store."""

    def __init__(self, count: int = 0) -> None:
        self._lock = threading.Lock()
        self.events: list[bytes] = []
        self.acked = 0
        self.ack_calls: list[int] = []
        self.append(count)

    def append(self, count: int) -> None:
        with self._lock:
            for _ in range(count):
                seq = len(self.events) + 1
                self.events.append(json.dumps({"gateway_id": GW, "seq": seq}).encode())

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        with self._lock:
            start = max(after_seq, self.acked)
            return [(start + 1 + i, e) for i, e in enumerate(self.events[start : start + limit])]

    def acknowledge(self, seq: int) -> None:
        with self._lock:
            self.ack_calls.append(seq)
            self.acked = max(self.acked, min(seq, len(self.events)))

    def acked_seq(self) -> int:
        with self._lock:
            return self.acked

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"registry_version": 3, "queue_depth": len(self.events) - self.acked}


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def seqs(probe: MqttProbe) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in probe.received(f"{P}/events")]


@contextmanager
def running(session: UplinkSession) -> Iterator[Runner]:
    runner = Runner()
    runner.add(session)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def settings(host: str, port: int, **overrides: Any) -> UplinkSettings:
    values: dict[str, Any] = {"keepalive": 5, "connect_timeout": 3.0, "backoff_base": 0.2,
                              "backoff_cap": 1.0}
    values.update(overrides)
    return UplinkSettings(host, port, GW, **values)


def test_events_stay_pending_until_the_platform_acks_not_on_puback(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(250)
    session = UplinkSession(settings(broker.host, broker.port, window=20, batch=50), journal)
    with running(session) as runner:
        assert wait_until(lambda: len(seqs(probe)) == 250)
        assert seqs(probe) == list(range(1, 251))  # in seq order, each once
        time.sleep(0.3)
        assert journal.acked_seq() == 0  # every PUBACK arrived; nothing acked end to end
        probe.publish_wait(f"{P}/ack", json.dumps({"seq": 100}).encode())
        assert wait_until(lambda: journal.acked_seq() == 100)
        journal.append(5)
        runner.call_soon(session.kick, session)
        assert wait_until(lambda: len(seqs(probe)) == 255)
    probe.close()


def test_a_cut_connection_resends_everything_above_the_ack(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(50)
    with FaultProxy(broker.host, broker.port) as proxy:
        session = UplinkSession(settings(proxy.host, proxy.port), journal)
        with running(session):
            assert wait_until(lambda: len(seqs(probe)) == 50)
            probe.publish_wait(f"{P}/ack", json.dumps({"seq": 30}).encode())
            assert wait_until(lambda: journal.acked_seq() == 30)
            proxy.cut()
            assert wait_until(lambda: session.stats.connects == 2)
            assert wait_until(lambda: len(seqs(probe)) == 70)
    got = seqs(probe)
    # 1..50 once, then 31..50 again after the reconnect: duplicates the consumer drops.
    assert got == list(range(1, 51)) + list(range(31, 51))
    probe.close()


def test_partition_is_noticed_by_keepalive_and_healed(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(10)
    with FaultProxy(broker.host, broker.port) as proxy:
        session = UplinkSession(settings(proxy.host, proxy.port, keepalive=2), journal)
        with running(session):
            assert wait_until(lambda: len(seqs(probe)) == 10)
            proxy.partition()
            journal.append(10)
            # The link is silent, not closed: paho's keepalive must notice (1.5–2 keepalives).
            assert wait_until(lambda: session.stats.disconnects >= 1, 15)
            proxy.heal()
            assert wait_until(lambda: set(seqs(probe)) == set(range(1, 21)), 20)
    probe.close()


def test_the_pages_certificate_request_waits_retained_for_the_city(broker: Broker) -> None:
    csr = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"
    session = UplinkSession(settings(broker.host, broker.port, web_csr=csr), MemoryJournal(0))
    with running(session):
        assert wait_until(lambda: session.connected)
        late = MqttProbe.connect(broker)  # the city looks later: retained, it is there
        late.subscribe(f"{P}/web/csr")
        late.wait_for(lambda: len(late.received(f"{P}/web/csr")) >= 1)
        [message] = late.received(f"{P}/web/csr")
        assert (message.payload, message.retain) == (csr, True)
    late.close()


def test_status_is_retained_online_and_the_will_says_offline(broker: Broker) -> None:
    journal = MemoryJournal(3)
    with FaultProxy(broker.host, broker.port) as proxy:
        session = UplinkSession(settings(proxy.host, proxy.port, version="9.9"), journal)
        with running(session):
            assert wait_until(lambda: session.connected)
            late = MqttProbe.connect(broker)
            late.subscribe(f"{P}/status")  # retained: a subscriber arriving later sees it
            late.wait_for(lambda: len(late.received(f"{P}/status")) >= 1)
            status = json.loads(late.received(f"{P}/status")[0].payload)
            assert status["state"] == "online"
            assert status["version"] == "9.9"
            assert status["registry_version"] == 3
            assert isinstance(status["queue_depth"], int)
            assert set(status) == {"state", "ts", "version", "registry_version", "queue_depth"}
            # Kill the link without a DISCONNECT: the broker publishes the will.
            proxy.partition()
            proxy.cut()
            late.wait_for(lambda: any(json.loads(m.payload)["state"] == "offline"
                                      for m in late.received(f"{P}/status")), 20)
            proxy.heal()
            assert wait_until(lambda: session.stats.connects >= 2, 20)
            late.wait_for(lambda: json.loads(late.received(f"{P}/status")[-1].payload)["state"]
                          == "online", 20)
        # A clean stop says offline itself.
        late.wait_for(lambda: json.loads(late.received(f"{P}/status")[-1].payload)["state"]
                      == "offline", 10)
        late.close()


def test_no_ack_for_a_long_time_sends_again_from_the_watermark(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(5)
    session = UplinkSession(settings(broker.host, broker.port, ack_timeout=1.0), journal)
    with running(session):
        assert wait_until(lambda: len(seqs(probe)) >= 10, 10)
        probe.publish_wait(f"{P}/ack", json.dumps({"seq": 5}).encode())
        assert wait_until(lambda: journal.acked_seq() == 5)
        count = len(seqs(probe))
        time.sleep(2.5)
        assert len(seqs(probe)) == count  # all acked: nothing more to resend
    assert session.stats.resent >= 5
    probe.close()


def test_malformed_acks_are_ignored(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    journal = MemoryJournal(5)
    session = UplinkSession(settings(broker.host, broker.port), journal)
    with running(session):
        assert wait_until(lambda: session.connected)
        for bad in (b"", b"nope", b"[]", b'{"seq": "5"}', b'{"seq": -1}', b'{"seq": 1.5}',
                    b'{"seq": 3, "extra": 1}'):
            probe.publish_wait(f"{P}/ack", bad)
        probe.publish_wait(f"{P}/ack", b'{"seq": 2}')
        assert wait_until(lambda: journal.acked_seq() == 2)
    assert session.stats.downlink_refused == 7
    assert journal.ack_calls == [2]
    probe.close()


def test_a_restarted_broker_that_forgot_the_session_gets_the_subscriptions_again(
    broker: Broker,
) -> None:
    journal = MemoryJournal(3)
    session = UplinkSession(settings(broker.host, broker.port), journal)
    with running(session):
        assert wait_until(lambda: session.connected)
        broker.restart(kill=True)  # SIGKILL before any autosave: the session is gone
        assert wait_until(lambda: session.stats.connects >= 2, 20)
        probe = MqttProbe.connect(broker)
        probe.publish_wait(f"{P}/ack", b'{"seq": 3}')
        assert wait_until(lambda: journal.acked_seq() == 3)
        probe.close()


def test_commands_reach_the_handler_and_results_go_to_the_response_topic(
    broker: Broker,
) -> None:
    received: list[bytes] = []

    def handle(envelope: bytes, reply: Callable[[dict[str, Any]], None]) -> None:
        received.append(envelope)
        threading.Thread(target=reply, args=({"counter": 7, "ok": True, "error": None},)).start()

    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/cmd/#")
    session = UplinkSession(settings(broker.host, broker.port), MemoryJournal(), handle)
    with running(session):
        assert wait_until(lambda: session.connected)
        probe.publish_wait(f"{P}/cmd", b'{"payload": "x", "sig": "y"}',
                           response_topic=f"{P}/cmd/result/r1", correlation_data=b"c-1")
        probe.wait_for(lambda: len(probe.received(f"{P}/cmd/result/r1")) == 1)
        result = probe.received(f"{P}/cmd/result/r1")[0]
        assert json.loads(result.payload) == {"counter": 7, "ok": True, "error": None}
        assert result.correlation_data == b"c-1"
        # A response topic outside the gateway's own tree is not used: results stay home.
        probe.publish_wait(f"{P}/cmd", b"{}", response_topic="rental/v1/gw-other/cmd/result")
        probe.wait_for(lambda: len(probe.received(f"{P}/cmd/result")) == 1)
    assert received[0] == b'{"payload": "x", "sig": "y"}'
    probe.close()


def test_publishes_the_broker_refuses_stay_pending(tls_broker: Broker) -> None:
    # A gateway whose certificate says gw-test-0002 but whose config says gw-test-0001:
    # the ACL refuses every publish (0x87), which paho would call "published".
    files = tls_broker.credentials("gw-test-0002")
    tls = TlsFiles(str(tls_broker.ca_file), str(files.cert), str(files.key))
    journal = MemoryJournal(5)
    session = UplinkSession(settings(tls_broker.host, tls_broker.port, tls=tls,
                                     ack_timeout=1.0), journal)  # fmt: skip
    with running(session):
        assert wait_until(lambda: session.stats.refused >= 5, 15)
    assert journal.acked_seq() == 0
    assert journal.pending(0, 10)[0][0] == 1


def test_tls_with_a_client_certificate_delivers(tls_broker: Broker) -> None:
    platform = MqttProbe.connect(tls_broker, identity="platform")
    platform.subscribe(f"{P}/events")
    files = tls_broker.credentials(GW)
    tls = TlsFiles(str(tls_broker.ca_file), str(files.cert), str(files.key))
    journal = MemoryJournal(20)
    session = UplinkSession(settings(tls_broker.host, tls_broker.port, tls=tls), journal)
    with running(session):
        platform.wait_for(lambda: len(seqs(platform)) == 20)
        platform.publish_wait(f"{P}/ack", b'{"seq": 20}')
        assert wait_until(lambda: journal.acked_seq() == 20)
    platform.close()


def test_backoff_is_jittered_capped_and_reset() -> None:
    backoff = Backoff(base=1.0, cap=60.0, floor=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.2 <= d <= 60.0 for d in delays)
    assert max(delays[:3]) <= 4.0
    # 7,024 gateways after a broker restart: the first retries spread over the window,
    # not all at one instant.
    fleet = [Backoff(rng=random.Random(n)).next_delay() for n in range(7024)]
    buckets = [sum(1 for d in fleet if lo <= d < lo + 0.1) for lo in (0.2, 0.5, 0.8)]
    assert min(buckets) > 0.15 * 7024 / 8
    backoff.reset()
    assert backoff.next_delay() <= 1.0


class MemorySnapshots:
    """Snapshots waiting to go up, in event order; `on_sent` runs when the broker took one."""

    def __init__(self, items: list[tuple[str, bytes]],
                 on_sent: Callable[[str], None] = lambda _id: None) -> None:  # fmt: skip
        self.items = items
        self.sent: list[str] = []
        self.on_sent = on_sent

    def next_snapshot(self) -> tuple[str, bytes] | None:
        waiting = [i for i in self.items if i[0] not in self.sent]
        return waiting[0] if waiting else None

    def snapshot_done(self, event_id: str, accepted: bool) -> None:
        assert accepted
        self.sent.append(event_id)
        self.on_sent(event_id)


def test_snapshots_travel_only_when_no_event_waits(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/#")
    journal = MemoryJournal(300)
    jpeg = bytes(random.Random(1).getrandbits(8) for _ in range(256 * 1024))

    def more_events(event_id: str) -> None:
        if event_id == "ev-0":  # events journaled while the first snapshot was on the wire
            journal.append(50)

    snapshots = MemorySnapshots([(f"ev-{n}", jpeg) for n in range(4)], more_events)
    session = UplinkSession(settings(broker.host, broker.port, window=20), journal,
                            snapshots=snapshots)  # fmt: skip
    with running(session):
        assert wait_until(lambda: len(snapshots.sent) == 4)
        assert wait_until(lambda: len(seqs(probe)) == 350)
    kinds = ["event" if m.topic.endswith("/events") else "snapshot"
             for m in probe.messages if not m.topic.endswith("/status")]  # fmt: skip
    # The backlog first, then one snapshot, then the 50 events that arrived meanwhile jump
    # ahead of the three snapshots still waiting.
    assert kinds == ["event"] * 300 + ["snapshot"] + ["event"] * 50 + ["snapshot"] * 3
    assert next(m.payload for m in probe.messages if "/snapshots/" in m.topic) == jpeg
    probe.close()


def test_events_published_to_nobody_are_sent_again_soon(broker: Broker) -> None:
    # A broker restarted without its sessions accepts events before the platform has
    # subscribed again, with PUBACK 0x10 "no matching subscribers", and drops them.
    journal = MemoryJournal(5)
    session = UplinkSession(settings(broker.host, broker.port, ack_timeout=600.0), journal)
    with running(session):
        assert wait_until(lambda: session.stats.unheard == 5)
        probe = MqttProbe.connect(broker)
        probe.subscribe(f"{P}/events")
        # Far sooner than the ack timeout of 10 minutes.
        probe.wait_for(lambda: len(seqs(probe)) == 5, 20)
        probe.publish_wait(f"{P}/ack", b'{"seq": 5}')
        assert wait_until(lambda: journal.acked_seq() == 5)
    assert seqs(probe) == [1, 2, 3, 4, 5]
    probe.close()


def test_an_event_after_a_quiet_spell_is_not_sent_twice(broker: Broker) -> None:
    # The ack timeout runs from the send: a building quiet for longer than the timeout must
    # not resend its next event the moment the broker's PUBACK comes back.
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(1)
    session = UplinkSession(settings(broker.host, broker.port, ack_timeout=1.0), journal)
    with running(session) as runner:
        probe.wait_for(lambda: len(seqs(probe)) == 1)
        probe.publish_wait(f"{P}/ack", b'{"seq": 1}')
        assert wait_until(lambda: journal.acked_seq() == 1)
        time.sleep(2.0)  # quiet for twice the ack timeout
        journal.append(1)
        runner.call_soon(session.kick, session)
        probe.wait_for(lambda: len(seqs(probe)) >= 2)
        time.sleep(0.5)  # the platform takes half the timeout to store and ack
        probe.publish_wait(f"{P}/ack", b'{"seq": 2}')
        assert wait_until(lambda: journal.acked_seq() == 2)
    assert seqs(probe) == [1, 2]
    assert session.stats.resent == 0
    probe.close()


def test_resends_back_off_while_the_platform_stays_silent(broker: Broker) -> None:
    # Without the back-off a 1 s ack timeout would resend about six times in 6.5 s; doubling
    # waits 1, 2, 4 s: resends at about 1 s and 3 s, the next not before 7 s.
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(1)
    session = UplinkSession(settings(broker.host, broker.port, ack_timeout=1.0), journal)
    with running(session):
        probe.wait_for(lambda: len(seqs(probe)) == 1)
        time.sleep(6.5)
        resends = session.stats.resent
        probe.publish_wait(f"{P}/ack", b'{"seq": 1}')
        assert wait_until(lambda: journal.acked_seq() == 1)
    assert 1 <= resends <= 3
    assert len(seqs(probe)) == 1 + resends
    probe.close()
