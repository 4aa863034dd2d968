"""What comes down from the broker cannot fool the session: oversize, retained, forged acks.

The session against a real Mosquitto, the platform's side played by a probe; and the broker's
ACL with client certificates, which is what keeps `P/ack` and `P/cmd` the platform's alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cloud_sync.envelope import MAX_ENVELOPE_BYTES
from cloud_sync.payload import PayloadRefused, parse_json, parse_object
from cloud_sync.uplink import MAX_DOWNLINK_PACKET, UplinkSession

from .broker import Broker
from .mqtt import NOT_AUTHORIZED, MqttProbe
from .test_uplink import GW, MemoryJournal, P, running, seqs, settings, wait_until

GW2 = "gw-test-0002"


def refusals(session: UplinkSession) -> dict[str, int]:
    """Downlink messages the session refused, by reason."""
    return dict(session.stats.downlink_refusals)


@pytest.mark.parametrize(("data", "reason"), [
    (b"[" * 100_000, "too_deep"),  # json.loads alone raises RecursionError on this
    (b'{"a":' * 50_000, "too_deep"),
    (b"x" * 2000, "too_large"),
    ('{"seq": 1}'.encode("utf-16"), "not_utf8"),  # json.loads would decode it
    (b'{"seq": "\xff"}', "not_utf8"),
    (b'{"a": "\\ud800"}', "not_utf8"),  # a lone surrogate cannot be encoded again
    (b"NaN", "not_json"),
    (b"9" * 5000, "not_json"),  # past Python's 4300 digits
    (b'{"seq": 1} x', "not_json"),
    (b'"' + b'\\"' * 500, "not_json"),
    (b"[1]", "wrong_type"),
])  # fmt: skip
def test_bounded_json_refuses_with_a_reason(data: bytes, reason: str) -> None:
    limit = 10**6 if reason in ("too_deep", "not_json") else 1024
    with pytest.raises(PayloadRefused) as refused:
        parse_object(data, max_bytes=limit)
    assert refused.value.reason == reason


def test_bounded_json_counts_only_structure() -> None:
    # Strings may hold brackets, escaped quotes and surrogate pairs.
    text = '{"a": ["]]]\\"[[[", {"b": "\\ud83d\\ude00"}]}'
    assert parse_json(text.encode(), max_bytes=100, max_depth=3) == json.loads(text)
    with pytest.raises(PayloadRefused):
        parse_json(text.encode(), max_bytes=100, max_depth=2)


def test_an_ack_above_what_this_connection_sent_is_refused(broker: Broker) -> None:
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/events")
    journal = MemoryJournal(13)
    session = UplinkSession(settings(broker.host, broker.port), journal)
    with running(session):
        probe.wait_for(lambda: len(seqs(probe)) == 13)
        # Forged (or stale): the city cannot have stored what was never sent.
        probe.publish_wait(f"{P}/ack", json.dumps({"seq": 10**9}).encode())
        probe.publish_wait(f"{P}/ack", json.dumps({"seq": 14}).encode())
        assert wait_until(lambda: refusals(session).get("ack_ahead") == 2)
        assert journal.ack_calls == []
        assert journal.status()["queue_depth"] == 13
        probe.publish_wait(f"{P}/ack", json.dumps({"seq": 13}).encode())
        assert wait_until(lambda: journal.acked_seq() == 13)
    assert journal.ack_calls == [13]
    probe.close()


def test_a_retained_ack_is_ignored(broker: Broker) -> None:
    platform = MqttProbe.connect(broker)
    platform.subscribe(f"{P}/events")
    # Left on the broker: it would come down again at every (re)connect, after the gateway
    # has sent its backlog again, and drop events the city has not stored this time.
    platform.publish_wait(f"{P}/ack", b'{"seq": 13}', retain=True)
    journal = MemoryJournal(20)
    session = UplinkSession(settings(broker.host, broker.port), journal)
    with running(session):
        platform.wait_for(lambda: len(seqs(platform)) == 20)
        assert wait_until(lambda: refusals(session).get("retained") == 1)
        platform.publish_wait(f"{P}/ack", b'{"seq": 2}')
        assert wait_until(lambda: journal.acked_seq() == 2)
    assert journal.ack_calls == [2]
    platform.publish_wait(f"{P}/ack", b"", retain=True)  # clears it
    platform.close()


def test_an_oversize_message_is_never_delivered(broker: Broker) -> None:
    commands: list[int] = []

    def handle(envelope: bytes, reply: Callable[[dict[str, Any]], None]) -> None:
        commands.append(len(envelope))  # not run: only the sizes matter here

    platform = MqttProbe.connect(broker)
    platform.subscribe(f"{P}/events")
    session = UplinkSession(settings(broker.host, broker.port), MemoryJournal(3), handle)
    with running(session):
        platform.wait_for(lambda: len(seqs(platform)) == 3)  # sent after it subscribed
        # The session announced its maximum packet size in CONNECT: the broker drops a
        # larger PUBLISH for it rather than send it, so paho never reads it into memory.
        platform.publish_wait(f"{P}/cmd", b"x" * MAX_DOWNLINK_PACKET, timeout=30)
        # The largest envelope the gateway takes still comes through.
        platform.publish_wait(f"{P}/cmd", b"y" * MAX_ENVELOPE_BYTES, timeout=30)
        # Within the packet size but far past any ack: refused unread.
        platform.publish_wait(f"{P}/ack", b" " * 65_536 + b'{"seq": 1}')
        platform.publish_wait(f"{P}/cmd", b"{}")
        assert wait_until(lambda: commands[-1:] == [2], 30)
    assert commands == [MAX_ENVELOPE_BYTES, 2]
    assert refusals(session) == {"too_large": 1}
    assert f"Dropping too large outgoing PUBLISH for {GW}" in broker.log()
    platform.close()


def test_only_the_platform_may_ack_or_command_a_gateway(tls_broker: Broker) -> None:
    gw1 = MqttProbe.connect(tls_broker, identity=GW)
    gw1.subscribe(f"{P}/ack")
    gw1.subscribe(f"{P}/cmd")
    other = MqttProbe.connect(tls_broker, identity=GW2)
    for leaf in ("ack", "cmd"):
        for retain in (False, True):
            assert other.publish_wait(f"{P}/{leaf}", b'{"seq": 13}', retain=retain) \
                == NOT_AUTHORIZED  # fmt: skip
    platform = MqttProbe.connect(tls_broker, identity="platform")
    assert platform.publish_wait(f"{P}/ack", b'{"seq": 1}') == 0
    gw1.wait_for(lambda: len(gw1.messages) == 1)
    assert [m.payload for m in gw1.messages] == [b'{"seq": 1}']
    for probe in (gw1, other, platform):
        probe.close()
