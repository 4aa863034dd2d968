"""The reference consumer against a real Mosquitto, with plain paho clients playing gateways."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from cloud_sync.envelope import load_public_key, open_command, public_key_text
from cloud_sync.topics import Topics
from rental_platform import Platform, PlatformSettings, TlsFiles

from .broker import Broker
from .mqtt import MqttProbe
from .pki import Pki, make_pki

GW1, GW2 = "gw-test-0001", "gw-test-0002"
ROOT = Path(__file__).resolve().parents[2]

MakePlatform = Callable[..., Platform]


_MADE_AT: dict[tuple[str, int], str] = {}


def event(gateway_id: str, seq: int, **fields: Any) -> bytes:
    """A valid SPEC 6 event; sent again, the same bytes (its ts is when it was first made)."""
    made = _MADE_AT.setdefault((gateway_id, seq),
                               datetime.now(UTC).isoformat(timespec="milliseconds"))
    body = {"schema": 1, "gateway_id": gateway_id, "seq": seq,
            "event_id": f"{gateway_id}-{seq}", "type": "door.forced", "door": "main",
            "ts": made}
    body.update(fields)
    return json.dumps(body).encode()


class Gateway:
    """A paho client publishing like a gateway and collecting its acks and commands."""

    def __init__(self, broker: Broker, gateway_id: str = GW1) -> None:
        self.topics = Topics("rental/v1", gateway_id)
        self.id = gateway_id
        self.probe = MqttProbe.connect(broker, identity=gateway_id, client_id=gateway_id)
        self.probe.subscribe(self.topics.ack)
        self.probe.subscribe(self.topics.cmd)

    def send(self, *seqs: int, acked: int | None = None, wait: bool = True) -> None:
        props = {"acked": str(acked)} if acked is not None else None
        mids = [self.probe.publish(self.topics.events, event(self.id, seq),
                                   user_properties=props) for seq in seqs]
        if wait:
            self.probe.wait_for(lambda: all(m in self.probe.published for m in mids))

    def acks(self) -> list[int]:
        return [json.loads(m.payload)["seq"] for m in self.probe.received(self.topics.ack)]

    def wait_ack(self, seq: int, timeout: float = 10.0) -> None:
        self.probe.wait_for(lambda: seq in self.acks(), timeout, what=f"ack {seq}")

    def close(self) -> None:
        self.probe.close()


@pytest.fixture
def make_platform(broker: Broker, tmp_path: Path, platform_db: str) -> Iterator[MakePlatform]:
    """Start platforms on `broker`, sharing one database (SQLite, then PostgreSQL) unless told
    otherwise."""
    started: list[Platform] = []

    def make(**overrides: Any) -> Platform:
        fields: dict[str, Any] = {"host": broker.host, "port": broker.port, "db": platform_db,
                                  "store_key": tmp_path / "store.key",
                                  "snapshot_dir": tmp_path / "snapshots",
                                  "client_id": f"platform-{len(started) + 1}"}
        fields.update(overrides)
        platform = Platform(PlatformSettings(**fields)).start()
        started.append(platform)
        platform.wait_connected()
        return platform

    yield make
    for platform in started:
        platform.stop()


@pytest.fixture
def gateway(broker: Broker) -> Iterator[Gateway]:
    gw = Gateway(broker)
    yield gw
    gw.close()


# -- storing and acknowledging ------------------------------------------------------------------


def test_events_are_stored_then_acknowledged_cumulatively(
        make_platform: MakePlatform, gateway: Gateway) -> None:
    platform = make_platform()
    gateway.send(*range(1, 201))
    gateway.wait_ack(200)
    assert [e.seq for e in platform.events_for(GW1)] == list(range(1, 201))
    assert platform.events_for(GW1)[0].event["event_id"] == f"{GW1}-1"
    acks = gateway.acks()
    assert acks == sorted(acks)
    # Coalesced: 200 events in a burst do not cost 200 acks.
    assert len(acks) < 50
    assert platform.stats.pubacks >= 200
    assert platform.watermark(GW1) == 200


def test_duplicates_are_dropped_counted_and_acknowledged_again(
        make_platform: MakePlatform, gateway: Gateway) -> None:
    platform = make_platform(ack_interval=0.0)
    gateway.send(1, 2, 3, 4, 5)
    gateway.wait_ack(5)
    before = len(gateway.acks())
    gateway.send(3, 4, 5)  # as after a reconnect that lost the ack
    platform.wait_for(lambda: platform.stats.duplicates == 3)
    assert len(platform.events_for(GW1)) == 5
    assert platform.gateway(GW1)["duplicates"] == 3
    # The gateway evidently missed the ack: it gets it again.
    gateway.probe.wait_for(lambda: len(gateway.acks()) > before, what="repeated ack")
    assert gateway.acks()[-1] == 5


def test_a_gap_holds_the_ack_until_it_is_filled(make_platform: MakePlatform,
                                                gateway: Gateway) -> None:
    platform = make_platform(ack_interval=0.0)
    gateway.send(1, 2, 4, 5, 6)
    platform.wait_for(lambda: len(platform.events_for(GW1)) == 5)
    gateway.wait_ack(2)
    time.sleep(0.3)
    assert max(gateway.acks()) == 2
    assert platform.watermark(GW1) == 2
    gateway.send(3)
    gateway.wait_ack(6)
    assert 3 not in gateway.acks()  # jumped over the filled gap


def test_the_gateways_acked_floor_starts_contiguity(make_platform: MakePlatform,
                                                   gateway: Gateway) -> None:
    """A fresh platform database: events up to 100 were stored by an earlier one."""
    platform = make_platform(ack_interval=0.0)
    gateway.send(101, 102, acked=100)
    gateway.wait_ack(102)
    gateway.send(104)  # the floor is remembered: 103 is still missing
    platform.wait_for(lambda: len(platform.events_for(GW1)) == 3)
    time.sleep(0.2)
    assert platform.watermark(GW1) == 102
    assert platform.gateway(GW1)["floor"] == 100


def test_a_floor_from_a_later_event_lifts_the_watermark(make_platform: MakePlatform,
                                                       gateway: Gateway) -> None:
    platform = make_platform(ack_interval=0.0)
    gateway.send(5, 6)
    platform.wait_for(lambda: len(platform.events_for(GW1)) == 2)
    assert platform.watermark(GW1) == 0  # 1..4 unknown
    gateway.send(7, acked=4)
    gateway.wait_ack(7)


def test_two_instances_share_the_load_and_ack_correctly(make_platform: MakePlatform,
                                                       broker: Broker) -> None:
    first = make_platform(ack_interval=0.02)
    second = make_platform(ack_interval=0.02)
    gateways = [Gateway(broker, f"gw-test-{n:04d}") for n in range(1, 5)]
    for gw in gateways:
        gw.send(*range(1, 301), wait=False)
    for gw in gateways:
        gw.wait_ack(300, timeout=20)
    assert first.stats.stored > 0
    assert second.stats.stored > 0
    assert first.stats.stored + second.stats.stored == 1200
    for gw in gateways:
        assert [e.seq for e in first.events_for(gw.id)] == list(range(1, 301))
        assert max(gw.acks()) == 300
        gw.close()


def test_an_absent_instance_holds_its_share_until_retired(make_platform: MakePlatform,
                                                          gateway: Gateway,
                                                          broker: Broker) -> None:
    """Mosquitto 2.0.11 hands shared-subscription messages to offline members too."""
    first = make_platform(ack_interval=0.02)
    absent = make_platform(ack_interval=0.02, client_id="platform-gone")
    absent.stop()
    gateway.send(*range(1, 101))
    first.wait_for(lambda: first.stats.stored + first.stats.duplicates >= 40)
    time.sleep(0.5)
    assert first.stats.stored < 100  # the absent one's share waits in its session
    assert max(gateway.acks()) < 100

    retired = _cli("retire", "--port", str(broker.port), "--client-id", "platform-gone")
    assert retired.returncode == 0, retired.stderr
    gateway.send(*range(1, 101))  # what a gateway does after its ack timeout
    gateway.wait_ack(100)
    assert [e.seq for e in first.events_for(GW1)] == list(range(1, 101))


def test_bad_messages_are_rejected_without_harm(make_platform: MakePlatform,
                                                gateway: Gateway) -> None:
    platform = make_platform(ack_interval=0.0)
    t = gateway.topics
    bad: list[tuple[str, bytes]] = [
        (t.events, b"not json"),
        (t.events, b"[1, 2]"),
        (t.events, json.dumps({"schema": 1, "gateway_id": GW1}).encode()),  # no seq
        (t.events, event(GW2, 1)),  # another gateway's id on our topic
        (t.events, event(GW1, 1).replace(b'"seq": 1', b'"seq": "1"')),
        (t.events, event(GW1, 1).replace(b'"seq": 1', b'"seq": ' + str(2**70).encode())),
        (t.events, event(GW1, 1, ts="yesterday")),
        (t.events, event(GW1, 1, ts="2026-01-01T10:00:00")),  # no offset
        (t.events, event(GW1, 1).decode().encode("utf-16")),
        (t.status, b'{"state": "asleep"}'),
        (t.snapshot("ev-1"), b"GIF89a"),
        (t.cmd_result, b'{"counter": "x"}'),
    ]
    for topic, payload in bad:
        gateway.probe.publish_wait(topic, payload)
    gateway.probe.publish_wait(t.events, event(GW1, 1, event_id="real"),
                               user_properties={"acked": "not a number"})
    gateway.wait_ack(1)
    platform.wait_for(lambda: platform.stats.rejected == len(bad))
    reasons = [r["reason"] for r in platform.rejects()]
    assert reasons == ["not_json", "not_object", "bad_seq", "gateway_mismatch", "bad_seq",
                       "bad_seq", "bad_ts", "bad_ts", "not_utf8", "bad_state", "not_jpeg",
                       "bad_result"]
    assert platform.rejects()[0]["payload"] == b"not json"
    assert [e.event["event_id"] for e in platform.events_for(GW1)] == ["real"]
    assert platform.watermark(GW1) == 1
    assert platform.gateway(GW1)["rejected"] == len(bad)
    assert platform.running


def test_a_reused_seq_is_kept_with_both_bodies_and_holds_the_ack(
        make_platform: MakePlatform, gateway: Gateway) -> None:
    platform = make_platform(ack_interval=0.0)
    gateway.send(1)
    gateway.wait_ack(1)
    gateway.probe.publish_wait(gateway.topics.events, event(GW1, 2, event_id="first"))
    gateway.probe.publish_wait(gateway.topics.events, event(GW1, 2, event_id="other"))
    gateway.send(3)
    platform.wait_for(lambda: platform.stats.conflicts == 1 and platform.stats.stored == 3)
    assert [e.event["event_id"] for e in platform.events_for(GW1)] == [f"{GW1}-1", "first",
                                                                       f"{GW1}-3"]
    assert platform.gateway(GW1)["hold_below"] == 2
    assert platform.rejects() == []
    # Seq 3 is stored, but no ack passes the conflict at 2: a resend of 3 (a duplicate, which
    # always earns the ack again) gets at most the ack of 2 that may have gone out before.
    before = len(gateway.acks())
    gateway.send(3)
    gateway.probe.wait_for(lambda: len(gateway.acks()) > before, what="repeated ack")
    assert gateway.acks()[-1] <= 2
    assert 3 not in gateway.acks()


def test_status_snapshots_and_results_are_stored(make_platform: MakePlatform,
                                                 gateway: Gateway) -> None:
    t = gateway.topics
    # Retained before any platform subscribed: a fresh database still learns it.
    gateway.probe.publish_wait(t.status, b'{"state": "online", "queue_depth": 3}', retain=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GW1)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    gateway.probe.publish_wait(t.web_csr, csr, retain=True)
    platform = make_platform()
    platform.wait_for(lambda: platform.status(GW1) is not None)
    assert platform.status(GW1) == {"state": "online", "queue_depth": 3}
    platform.wait_for(lambda: platform.web_request(GW1) == csr)
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(5000)
    gateway.probe.publish_wait(t.snapshot("ev-7"), jpeg)
    gateway.probe.publish_wait(t.cmd_result, b'{"counter": 9, "ok": false, "error": "expired"}')
    platform.wait_for(lambda: platform.snapshot(GW1, "ev-7") == jpeg)
    platform.wait_for(lambda: platform.command(GW1, 9) is not None)
    record = platform.command(GW1, 9)
    assert record is not None
    assert (record.ok, record.error) == (False, "expired")


def test_an_offline_platform_gets_what_was_sent_meanwhile(make_platform: MakePlatform,
                                                         gateway: Gateway,
                                                         tmp_path: Path) -> None:
    platform = make_platform(client_id="platform-a")
    gateway.send(1)
    gateway.wait_ack(1)
    platform.stop()
    gateway.send(2, 3, 4)  # queued in the platform's session by the broker
    again = make_platform(client_id="platform-a")
    gateway.wait_ack(4)
    assert [e.seq for e in again.events_for(GW1)] == [1, 2, 3, 4]


# -- a consumer killed with SIGKILL -------------------------------------------------------------


def _run_cli(broker: Broker, db: Path, client_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rental_platform", "run", "--host", broker.host,
         "--port", str(broker.port), "--db", str(db), "--client-id", client_id,
         "--stats-interval", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _watermark(db: Path, gateway_id: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            row = conn.execute("SELECT watermark FROM gateways WHERE gateway_id = ?",
                               (gateway_id,)).fetchone()
        except sqlite3.OperationalError:  # schema not created yet
            return 0
    return int(row[0]) if row else 0


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def test_a_consumer_killed_and_restarted_loses_nothing(broker: Broker, gateway: Gateway,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "city.db"
    consumer = _run_cli(broker, db, "platform-k")
    try:
        # Until it stored a first event its session might not exist yet.
        def first_stored() -> bool:
            gateway.send(1)
            return _watermark(db, GW1) >= 1

        _wait(first_stored, 20, "first event")
        total = 3000

        def send_the_rest() -> None:
            for start in range(2, total + 1, 100):
                gateway.send(*range(start, min(start + 100, total + 1)), wait=False)
                time.sleep(0.01)

        sender = threading.Thread(target=send_the_rest)
        sender.start()
        _wait(lambda: _watermark(db, GW1) >= 300, 20, "events flowing")
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        killed_at = _watermark(db, GW1)
        sender.join()
        consumer = _run_cli(broker, db, "platform-k")
        gateway.wait_ack(total, timeout=60)
    finally:
        consumer.terminate()
        _, err = consumer.communicate(timeout=20)
    assert killed_at < total, "the kill came too late to test anything"
    with sqlite3.connect(db) as conn:
        seqs = [row[0] for row in conn.execute(
            "SELECT seq FROM events WHERE gateway_id = ? ORDER BY seq", (GW1,))]
    assert seqs == list(range(1, total + 1)), err.decode()[-2000:]
    assert consumer.returncode == 0, err.decode()[-2000:]


# -- commands -----------------------------------------------------------------------------------


def test_commands_are_signed_with_persistent_counters(make_platform: MakePlatform,
                                                      gateway: Gateway, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    public = load_public_key(public_key_text(key))
    platform = make_platform(signing_key=key, wall_clock=lambda: 0.0)
    first = platform.send_command(GW1, "unlock", {"door": "main", "seconds": 5})
    second = platform.send_command(GW1, "lockdown", {"on": True})
    assert (first, second) == (1, 2)
    gateway.probe.wait_for(lambda: len(gateway.probe.received(gateway.topics.cmd)) == 2)
    messages = gateway.probe.received(gateway.topics.cmd)
    commands = [open_command(m.payload, public, gateway_id=GW1, now=datetime.now(UTC))
                for m in messages]
    assert [(c.counter, c.cmd, c.args) for c in commands] == [
        (1, "unlock", {"door": "main", "seconds": 5}), (2, "lockdown", {"on": True})]
    assert messages[0].response_topic == gateway.topics.cmd_result
    assert messages[0].correlation_data == f"{GW1}/1".encode()

    # The gateway answers on the response topic; the first result for a counter wins.
    for result in ({"counter": 1, "ok": True, "error": None},
                   {"counter": 1, "ok": False, "error": "replay"}):
        gateway.probe.publish_wait(messages[0].response_topic or "", json.dumps(result),
                                   correlation_data=messages[0].correlation_data)
    record = platform.wait_result(GW1, 1, timeout=10)
    assert (record.ok, record.error, record.cmd) == (True, None, "unlock")
    platform.wait_for(lambda: platform.stats.results == 2)
    assert platform.command(GW1, 1) == record
    platform.stop()

    again = make_platform(signing_key=key, wall_clock=lambda: 0.0)
    assert again.send_command(GW1, "unlock", {"door": "main", "seconds": 1}) == 3
    assert again.send_command(GW2, "unlock", {"door": "main", "seconds": 1}) == 1
    # With the real clock, counters are at least the time in ms: a database restored from a
    # backup cannot go below what gateways accepted since.
    clocked = make_platform(signing_key=key)
    assert clocked.send_command(GW1, "unlock", {"door": "main", "seconds": 1}) >= \
        int(time.time() * 1000) - 60_000


def test_registry_commands_keep_no_personal_data(make_platform: MakePlatform,
                                                 gateway: Gateway, tmp_path: Path) -> None:
    platform = make_platform(signing_key=Ed25519PrivateKey.generate())
    tenant = {"id": 7, "name": "张三", "id_number": "440305199001011234", "room": "301"}
    counter = platform.send_registry(GW1, 5, None, [tenant], [3])
    gateway.probe.wait_for(lambda: bool(gateway.probe.received(gateway.topics.cmd)))
    payload = json.loads(json.loads(gateway.probe.received(gateway.topics.cmd)[0].payload)
                         ["payload"])
    assert payload["cmd"] == "registry.apply"
    assert payload["args"] == {"version": 5, "base_version": None, "tenants": [tenant],
                               "removed": [3]}
    record = platform.command(GW1, counter)
    assert record is not None
    assert json.loads(record.summary or "") == {"version": 5, "base_version": None,
                                                "tenants": 1, "removed": 1}
    platform.stop()
    database = tmp_path / "platform.db"
    if database.exists():  # SQLite; PostgreSQL's side: tests/platform/test_sealing.py
        assert b"440305199001011234" not in database.read_bytes()


# -- TLS ----------------------------------------------------------------------------------------


def test_over_tls_with_identities_and_acls(tls_broker: Broker, tmp_path: Path) -> None:
    files = tls_broker.credentials("platform")
    settings = PlatformSettings(
        host=tls_broker.host, port=tls_broker.port, db=tmp_path / "tls.db",
        client_id="ignored-under-tls", signing_key=Ed25519PrivateKey.generate(),
        tls=TlsFiles(str(tls_broker.ca_file), str(files.cert), str(files.key)))
    gateway = Gateway(tls_broker, GW1)
    with Platform(settings) as platform:
        platform.wait_connected()
        assert platform.stats.last_error == ""  # every subscription granted
        gateway.send(1, 2, 3)
        gateway.wait_ack(3)
        counter = platform.send_command(GW1, "unlock", {"door": "main", "seconds": 2})
        gateway.probe.wait_for(lambda: bool(gateway.probe.received(gateway.topics.cmd)))
        gateway.probe.publish_wait(gateway.topics.cmd_result,
                                   json.dumps({"counter": counter, "ok": True, "error": None}))
        assert platform.wait_result(GW1, counter).ok is True
    gateway.close()


def test_two_tls_instances_each_with_its_own_identity(tmp_path: Path, pki: Pki) -> None:
    with Broker(tmp_path / "broker", pki=pki, platforms=("platform-a", "platform-b")) as broker:
        platforms = []
        for name in ("platform-a", "platform-b"):
            files = broker.credentials(name)
            tls = TlsFiles(str(broker.ca_file), str(files.cert), str(files.key))
            platforms.append(Platform(PlatformSettings(
                host=broker.host, port=broker.port, db=tmp_path / "city.db", tls=tls,
                ack_interval=0.02)).start())
        for platform in platforms:
            platform.wait_connected()
        gateway = Gateway(broker, GW1)
        gateway.send(*range(1, 401), wait=False)
        gateway.wait_ack(400, timeout=20)
        assert all(p.stats.stored > 0 for p in platforms)
        assert all(p.stats.disconnects == 0 for p in platforms)  # no takeover between them
        gateway.close()
        for platform in platforms:
            platform.stop()


# -- the command line ---------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rental_platform", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_cli_keygen_and_send(broker: Broker, gateway: Gateway, tmp_path: Path) -> None:
    keyfile = tmp_path / "platform.key"
    made = _cli("keygen", "--out", str(keyfile))
    assert made.returncode == 0, made.stderr
    public = load_public_key(made.stdout.strip())
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert _cli("keygen", "--out", str(keyfile)).returncode == 2  # never overwritten

    def answer() -> None:  # the gateway's side: execute and reply
        def commands() -> int:
            return len(gateway.probe.received(gateway.topics.cmd))

        for seen in range(4):
            def arrived(n: int = seen) -> bool:
                return commands() > n

            gateway.probe.wait_for(arrived, timeout=60)
            message = gateway.probe.received(gateway.topics.cmd)[seen]
            command = open_command(message.payload, public, gateway_id=GW1,
                                   now=datetime.now(UTC))
            ok = command.cmd != "lockdown"
            received.append(command)
            gateway.probe.publish_wait(message.response_topic or "", json.dumps(
                {"counter": command.counter, "ok": ok, "error": None if ok else "nope"}))

    received: list[Any] = []
    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    common = ["--port", str(broker.port), "--db", str(tmp_path / "city.db"),
              "--signing-key", str(keyfile), "--timeout", "20", GW1]
    sent = _cli("send", *common, "unlock", "--door", "main", "--seconds", "5")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) | {"counter": 0} == {
        "gateway_id": GW1, "counter": 0, "cmd": "unlock", "ok": True, "error": None}
    refused = _cli("send", *common, "lockdown", "--on")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "nope"
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"version": 2, "base_version": 1, "tenants": [],
                                    "removed": [5]}))
    applied = _cli("send", *common, "registry", str(registry))
    assert applied.returncode == 0, applied.stderr
    chain = make_pki(tmp_path / "pki", identities=()).server.cert
    installed = _cli("send", *common, "web-certificate", str(chain))
    assert installed.returncode == 0, installed.stderr
    responder.join(timeout=10)
    assert received[-1].cmd == "web.certificate"
    assert received[-1].args == {"chain": chain.read_text()}
    counters = [json.loads(r.stdout)["counter"] for r in (sent, refused, applied, installed)]
    assert counters == sorted(counters)
    assert len(set(counters)) == 4


def test_cli_send_without_an_answer_times_out(broker: Broker, tmp_path: Path) -> None:
    keyfile = tmp_path / "platform.key"
    _cli("keygen", "--out", str(keyfile))
    result = _cli("send", "--port", str(broker.port), "--db", str(tmp_path / "city.db"),
                  "--signing-key", str(keyfile), "--timeout", "1", GW1, "lockdown", "--off")
    assert result.returncode == 3
    assert "not met" in result.stderr or "within" in result.stderr


# -- throughput ---------------------------------------------------------------------------------


def test_thousands_of_events_per_second(make_platform: MakePlatform, broker: Broker) -> None:
    platform = make_platform()
    gateways = [Gateway(broker, f"gw-load-{n:04d}") for n in range(10)]
    per_gateway = 1000
    started = time.monotonic()
    for gw in gateways:
        gw.send(*range(1, per_gateway + 1), wait=False)
    for gw in gateways:
        gw.wait_ack(per_gateway, timeout=60)
    elapsed = time.monotonic() - started
    rate = platform.stats.stored / elapsed
    print(f"\n{platform.stats.stored} events in {elapsed:.2f} s: {rate:.0f}/s,"
          f" {platform.stats.batches} batches")
    assert platform.stats.stored == 10 * per_gateway
    assert rate > 1000
    latencies = platform.latencies()
    assert len(latencies) == 10 * per_gateway
    assert all(0 <= received <= stored < 60 for received, stored in latencies)
    for gw in gateways:
        gw.close()
