"""The test infrastructure does what fault tests rely on: ACLs, identities, persistence, faults."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from .broker import Broker
from .mqtt import NO_SUBSCRIBERS, NOT_AUTHORIZED, MqttProbe
from .pki import Pki, make_pki
from .proxy import FaultProxy

GW1, GW2 = "gw-test-0001", "gw-test-0002"


def topic(gateway_id: str, leaf: str) -> str:
    return f"rental/v1/{gateway_id}/{leaf}"


# -- plain broker, persistence ----------------------------------------------------------------


def test_plain_broker_delivers_and_restarts_on_the_same_port(broker: Broker) -> None:
    sub = MqttProbe.connect(broker)
    sub.subscribe("t/#")
    pub = MqttProbe.connect(broker)
    assert pub.publish_wait("t/1", b"one") == 0
    sub.wait_for(lambda: len(sub.messages) == 1)
    port = broker.port
    broker.restart()
    assert broker.port == port
    assert broker.running
    sub.wait_for(lambda: len(sub.connects) == 2, what="reconnect")
    sub.close()
    pub.close()


def _queue_one_for_offline_session(broker: Broker, *, clean_start: bool = False) -> None:
    """An offline persistent session with one QoS 1 message the broker acknowledged."""
    sub = MqttProbe.connect(broker, client_id="keeper", clean_start=clean_start,
                            session_expiry=3600)
    sub.subscribe("q/#")
    sub.close()
    pub = MqttProbe.connect(broker)
    assert pub.publish_wait("q/1", b"kept?") == 0
    pub.close()


def _drain_session(broker: Broker) -> list[bytes]:
    sub = MqttProbe.connect(broker, client_id="keeper", clean_start=False, session_expiry=3600)
    time.sleep(0.5)
    sub.close()
    return [m.payload for m in sub.messages]


def test_stop_saves_what_the_broker_acknowledged(broker: Broker) -> None:
    _queue_one_for_offline_session(broker)
    broker.restart()  # SIGTERM: Mosquitto saves on the way out
    assert _drain_session(broker) == [b"kept?"]


def test_a_session_begun_with_clean_start_is_not_saved(broker: Broker) -> None:
    """Mosquitto 2.0.11 writes to its file only sessions whose CONNECT had clean_start false,
    even with a session expiry: a consumer must never connect with clean_start true."""
    _queue_one_for_offline_session(broker, clean_start=True)
    broker.restart()
    assert _drain_session(broker) == []


def test_kill_forgets_what_was_acknowledged_since_the_last_save(broker: Broker) -> None:
    """Why SPEC 3 wants an end-to-end ack: the broker's PUBACK does not survive a kill -9."""
    _queue_one_for_offline_session(broker)
    broker.restart(kill=True)
    assert _drain_session(broker) == []


def test_config_has_the_settings_the_fault_tests_need(tmp_path: Path, pki: Pki) -> None:
    text = Broker(tmp_path, pki=pki, autosave_interval=2).config_text()
    for line in ("autosave_interval 2", "autosave_on_changes false", "persistence true",
                 "max_queued_messages 100000", "require_certificate true",
                 "use_identity_as_username true", "use_username_as_clientid true",
                 "allow_anonymous false"):
        assert line in text.splitlines()


# -- TLS: identities and ACLs -------------------------------------------------------------------


def test_a_gateway_publishes_only_on_its_own_uplink_topics(tls_broker: Broker) -> None:
    platform = MqttProbe.connect(tls_broker, identity="platform")
    platform.subscribe("$share/central/rental/v1/+/events")
    platform.subscribe("rental/v1/+/status")
    gw1 = MqttProbe.connect(tls_broker, identity=GW1)

    assert gw1.publish_wait(topic(GW1, "events"), b'{"seq": 1}') == 0
    assert gw1.publish_wait(topic(GW1, "status"), b"{}", retain=True) == 0
    # 0x10: accepted, nobody subscribed.
    assert gw1.publish_wait(topic(GW1, "snapshots/ev-1"), b"\xff\xd8") == NO_SUBSCRIBERS
    assert gw1.publish_wait(topic(GW1, "cmd/result"), b"{}") == NO_SUBSCRIBERS
    # Another gateway's topics, and the downlink of its own: refused by the broker.
    assert gw1.publish_wait(topic(GW2, "events"), b'{"seq": 666}') == NOT_AUTHORIZED
    assert gw1.publish_wait(topic(GW2, "status"), b"{}") == NOT_AUTHORIZED
    assert gw1.publish_wait(topic(GW1, "ack"), b'{"seq": 999}') == NOT_AUTHORIZED
    assert gw1.publish_wait(topic(GW1, "cmd"), b"{}") == NOT_AUTHORIZED

    platform.wait_for(lambda: len(platform.messages) >= 2)
    time.sleep(0.3)
    assert sorted(m.topic for m in platform.messages) == [topic(GW1, "events"),
                                                          topic(GW1, "status")]
    gw1.close()
    platform.close()


def test_a_gateway_reads_only_its_own_downlink(tls_broker: Broker) -> None:
    gw1 = MqttProbe.connect(tls_broker, identity=GW1)
    gw2 = MqttProbe.connect(tls_broker, identity=GW2)
    for probe in (gw1, gw2):
        probe.subscribe(topic(GW1, "ack"))  # subscribing is allowed; delivery is checked
        probe.subscribe(topic(GW1, "cmd"))
    gw2.subscribe("rental/v1/#")
    platform = MqttProbe.connect(tls_broker, identity="platform")
    assert platform.publish_wait(topic(GW1, "ack"), b'{"seq": 5}') == 0
    assert platform.publish_wait(topic(GW1, "cmd"), b"{}") == 0
    gw1.wait_for(lambda: len(gw1.messages) == 2)
    assert gw1.publish_wait(topic(GW1, "events"), b"{}") == 0  # not for gw2's eyes either
    time.sleep(0.3)
    assert gw2.messages == []
    for probe in (gw1, gw2, platform):
        probe.close()


def test_the_platform_cannot_impersonate_a_gateway(tls_broker: Broker) -> None:
    platform = MqttProbe.connect(tls_broker, identity="platform")
    assert platform.publish_wait(topic(GW1, "events"), b"{}") == NOT_AUTHORIZED
    assert platform.publish_wait(topic(GW1, "status"), b"{}") == NOT_AUTHORIZED
    platform.close()


def test_a_client_id_cannot_knock_another_gateway_off(tls_broker: Broker) -> None:
    gw1 = MqttProbe.connect(tls_broker, identity=GW1, client_id=GW1)
    impostor = MqttProbe.connect(tls_broker, identity=GW2, client_id=GW1)
    time.sleep(0.5)
    assert gw1.disconnects == []  # the impostor got its own id (its certificate's), not gw1's
    impostor.subscribe(topic(GW1, "ack"))
    platform = MqttProbe.connect(tls_broker, identity="platform")
    platform.publish_wait(topic(GW1, "ack"), b'{"seq": 1}')
    time.sleep(0.3)
    assert impostor.messages == []
    for probe in (gw1, impostor, platform):
        probe.close()


def test_the_same_identity_takes_its_session_over(tls_broker: Broker) -> None:
    first = MqttProbe.connect(tls_broker, identity=GW1)
    first.client.reconnect_delay_set(30, 30)  # stay off once taken over
    second = MqttProbe.connect(tls_broker, identity=GW1)
    first.wait_for(lambda: bool(first.disconnects), what="takeover")
    # Mosquitto 2.0.11 closes the old connection without a DISCONNECT 0x8E; paho says 0x80.
    assert "gw-test-0001 already connected, closing old connection" in tls_broker.log()
    time.sleep(0.3)
    assert second.disconnects == []
    first.client.loop_stop()
    second.close()


# CONNECT, MQTT 3.1.1, client id "a": the broker answers CONNACK (0x20) if it lets us in.
CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a"


def _answer(context: ssl.SSLContext, broker: Broker) -> str:
    """"connack" if the broker answers a CONNECT over TLS with `context`, else "refused"."""
    try:
        with socket.create_connection((broker.host, broker.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            # TLS 1.3: the server checks the client's certificate after the client's side of
            # the handshake is over, so a refusal shows on the first read.
            tls.sendall(CONNECT)
            return "connack" if tls.recv(1) == b"\x20" else "refused"
    except (ssl.SSLError, ConnectionError):
        return "refused"


def test_only_clients_with_a_certificate_of_our_ca_get_in(tls_broker: Broker,
                                                          tmp_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(tls_broker.ca_file))
    assert _answer(context, tls_broker) == "refused"  # no certificate

    rogue = make_pki(tmp_path / "rogue", identities=["platform"])
    context.load_cert_chain(rogue.client("platform").cert, rogue.client("platform").key)
    assert _answer(context, tls_broker) == "refused"  # another CA's "platform"

    files = tls_broker.credentials(GW1)
    context.load_cert_chain(files.cert, files.key)
    assert _answer(context, tls_broker) == "connack"


# -- FaultProxy -------------------------------------------------------------------------------


def test_proxy_forwards_and_cut_resets_every_connection(broker: Broker, proxy: FaultProxy) -> None:
    sub = MqttProbe.connect(broker, host=proxy.host, port=proxy.port)
    sub.subscribe("p/#")
    pub = MqttProbe.connect(broker, host=proxy.host, port=proxy.port)
    assert pub.publish_wait("p/1", b"x" * 200_000) == 0
    sub.wait_for(lambda: len(sub.messages) == 1)
    assert proxy.open == 2
    assert proxy.accepted == 2

    assert proxy.cut() == 2
    assert proxy.cuts == 2
    sub.wait_for(lambda: len(sub.connects) == 2, what="reconnect after cut")
    pub.wait_for(lambda: len(pub.connects) == 2, what="reconnect after cut")
    assert sub.disconnects
    assert pub.disconnects
    assert proxy.accepted == 4
    sub.subscribe("p/#")
    assert pub.publish_wait("p/2", b"after") == 0
    sub.wait_for(lambda: any(m.topic == "p/2" for m in sub.messages))
    sub.close()
    pub.close()


def test_partition_holds_traffic_until_heal(broker: Broker, proxy: FaultProxy) -> None:
    pub = MqttProbe.connect(broker, host=proxy.host, port=proxy.port)
    proxy.partition()
    mid = pub.publish("p/1", b"held")
    time.sleep(0.5)
    assert mid not in pub.published  # no PUBACK through a partition
    assert pub.disconnects == []  # and no error either: the connection looks open

    late = MqttProbe(client_id="late")
    late.start(proxy.host, proxy.port, wait=False)  # TCP accepted, CONNECT held
    time.sleep(0.5)
    assert late.connects == []

    proxy.heal()
    pub.wait_for(lambda: mid in pub.published, what="PUBACK after heal")
    late.wait_for(lambda: late.connects == [0], what="CONNACK after heal")
    assert proxy.open == 2
    pub.close()
    late.close()


def test_proxy_to_a_dead_broker_resets_new_connections(broker: Broker,
                                                       proxy: FaultProxy) -> None:
    broker.kill()
    with socket.create_connection((proxy.host, proxy.port)) as sock:
        sock.settimeout(2)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    broker.start()
    probe = MqttProbe.connect(broker, host=proxy.host, port=proxy.port)
    probe.close()
