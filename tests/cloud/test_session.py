"""The MQTT session engine (cloud_sync/session.py) under both ends, against a real Mosquitto."""

from __future__ import annotations

import fcntl
import re
import shutil
import struct
import termios
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

import cloud_sync.session
from cloud_sync.runner import Runner
from cloud_sync.session import Link, LinkStats, Session
from rental_platform import Platform, PlatformSettings

from .broker import Broker
from .mqtt import MqttProbe
from .procs import wait_until
from .proxy import FaultProxy
from .test_consumer import GW1, Gateway

ROOT = Path(__file__).resolve().parents[2]


class Recorder(Session[LinkStats]):
    """A session that subscribes to `t/#` and records what comes, PUBACKing nothing itself."""

    def __init__(self, link: Link) -> None:
        super().__init__(link, LinkStats())
        self.received: list[tuple[mqtt.Client, int, bytes]] = []

    def _subscriptions(self) -> list[tuple[str, int]]:
        return [("t/#", 1)]

    def _on_received(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        self.received.append((client, msg.mid, bytes(msg.payload)))


def quick(host: str, port: int, **fields: Any) -> Link:
    """A link that retries within a fraction of a second."""
    return Link(host, port, "recorder", backoff_base=0.05, backoff_cap=0.2, **fields)


@pytest.fixture
def runner() -> Iterator[Runner]:
    """A runner for the test's sessions: add them, then start it. Stopped afterwards."""
    driver = Runner()
    yield driver
    driver.stop()


def on_runner(runner: Runner, session: Session[Any], call: Callable[[], bool]) -> bool:
    """`call()`'s answer, run on the runner's thread as everything touching paho must be."""
    answers: list[bool] = []
    runner.call_soon(lambda: answers.append(call()), session)
    assert wait_until(lambda: bool(answers), 5)
    return answers[0]


def test_only_the_session_engine_drives_a_paho_client() -> None:
    """One engine: no other module of the libraries or applications makes or loops a client."""
    driving = re.compile(r"mqtt\.Client\(|\.loop(_read|_write|_misc|_start|_forever)?\(")
    found = sorted(
        str(path.relative_to(ROOT))
        for package in ("cloud_sync", "rental_platform", "gateway")
        for path in (ROOT / package).rglob("*.py")
        if driving.search(path.read_text())
    )
    assert found == ["cloud_sync/session.py"]


def test_a_connection_without_connack_is_dropped_and_retried(
    proxy: FaultProxy, runner: Runner
) -> None:
    proxy.partition()  # TCP is accepted, nothing comes back
    session = Recorder(quick(proxy.host, proxy.port, connect_timeout=0.3))
    runner.add(session)
    runner.start()
    assert wait_until(lambda: proxy.accepted >= 2, 10), session.stats
    assert session.stats.last_error == "no CONNACK within 0.3 s"
    assert not session.connected
    proxy.heal()
    assert wait_until(lambda: session.subscribed, 10), session.stats
    assert session.stats.connects == 1


def test_a_puback_owed_on_a_dropped_connection_is_not_sent_on_the_next(
    broker: Broker, proxy: FaultProxy, runner: Runner
) -> None:
    """Message ids are per connection: acking an old one on the new connection could
    acknowledge an unrelated message. The broker sends the unacknowledged one again."""
    link = quick(proxy.host, proxy.port, manual_ack=True, session_expiry=600)
    session = Recorder(link)
    probe = MqttProbe.connect(broker)
    runner.add(session)
    runner.start()
    assert wait_until(lambda: session.subscribed, 10)
    probe.publish_wait("t/1", b"one")
    assert wait_until(lambda: len(session.received) == 1, 10)
    proxy.cut()
    assert wait_until(lambda: len(session.received) == 2, 10), session.stats
    (old, old_mid, _), (new, new_mid, payload) = session.received
    assert payload == b"one"
    assert new is not old
    assert on_runner(runner, session, lambda: session.puback(old, old_mid, 1)) is False
    assert on_runner(runner, session, lambda: session.puback(new, new_mid, 1)) is True
    runner.stop()
    # Closed with a DISCONNECT, behind the PUBACK. The session lives on at the broker: had
    # that PUBACK gone astray, "one" would come a third time, ahead of "two".
    again = Recorder(link)
    try:
        assert wait_until(lambda: pumped(again) and again.subscribed, 10)
        probe.publish_wait("t/2", b"two")
        assert wait_until(lambda: pumped(again) and len(again.received) == 1, 10)
    finally:
        again.close()
        probe.close()
    assert again.received[0][2] == b"two"


def pumped(session: Session[Any]) -> bool:
    """Be the session's runner for one turn, on this thread."""
    session.service()
    session.on_writable()
    session.on_readable()
    return True


def _unread_bytes(sock: Any) -> int:
    data = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", data)[0])


def test_a_burst_is_read_in_one_call_up_to_its_bound(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One readable event reads every packet waiting, not one per trip through the runner;
    at the bound it says more waits, and the runner calls again without sleeping."""
    monkeypatch.setattr(cloud_sync.session, "_READ_BURST", 3)
    session = Recorder(quick(broker.host, broker.port))
    probe = MqttProbe.connect(broker)
    try:
        assert wait_until(lambda: pumped(session) and session.subscribed, 10)
        for n in range(10):
            probe.publish("t/burst", bytes([n]), qos=0)
        # 10 PUBLISH packets of 11 bytes: wait until the kernel holds all of them.
        assert wait_until(lambda: _unread_bytes(session.socket()) >= 110, 10)
        assert session.on_readable() is True
        assert len(session.received) == 3
        calls = 1
        while session.on_readable():
            calls += 1
        assert (calls, len(session.received)) == (3, 10)
    finally:
        session.close()
        probe.close()


def test_the_platform_subscribes_again_after_the_broker_forgot_it(
    broker: Broker, tmp_path: Path
) -> None:
    """A broker restarted without its save has no session and no subscription for the
    platform, whatever clean_start asked: events would be dropped with "no matching
    subscribers" and never acked, had the platform not subscribed again on connect."""
    settings = PlatformSettings(host=broker.host, port=broker.port, db=tmp_path / "p.db",
                                client_id="platform-1", ack_interval=0.0)  # fmt: skip
    with Platform(settings) as platform:
        platform.wait_connected()
        gateway = Gateway(broker)
        gateway.send(1, 2)
        gateway.wait_ack(2)
        gateway.close()
        broker.kill()
        shutil.rmtree(broker.persistence_dir)
        broker.start()
        platform.wait_for(lambda: platform.stats.connects == 2 and platform.connected, 30)
        gateway = Gateway(broker)
        gateway.send(3, 4, acked=2)
        gateway.wait_ack(4)
        gateway.close()
        assert platform.stats.disconnects == 1
        assert [e.seq for e in platform.events_for(GW1)] == [1, 2, 3, 4]
