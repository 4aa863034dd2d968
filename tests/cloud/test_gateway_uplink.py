"""The whole gateway over TLS to a broker with identity ACLs, and the reference platform.

A real OSDP reader (libosdp on a pty), the gateway's store, doors and uplink, Mosquitto with
client certificates, and `rental_platform.Platform` as the city: a card swipe reaches the
city; the city's registry and commands come back down, signed; forged ones change nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text, seal_command
from gateway.service import Gateway
from rental_platform import Platform, PlatformSettings
from rental_platform import TlsFiles as PlatformTls
from tests.e2e.building import Building, building
from tests.store.factories import id_number

from .broker import Broker
from .mqtt import MqttProbe
from .pki import Pki

GW = "gw-test-0001"
P = f"rental/v1/{GW}"


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class City:
    """A gateway building wired to the TLS broker, and the platform."""

    def __init__(self, b: Building, broker: Broker, platform: Platform, key: Ed25519PrivateKey):
        self.building = b
        self.broker = broker
        self.platform = platform
        self.key = key
        self.gateway = Gateway(b.config, web=False)

    def stored(self, kind: str) -> list[dict[str, Any]]:
        return [e.event for e in self.platform.events_for(GW) if e.event["type"] == kind]


@pytest.fixture
def city(tmp_path: Path, pki: Pki) -> Iterator[City]:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "building").mkdir()
    # "intruder" holds platform rights on the broker (a stolen platform certificate) but
    # not the platform's signing key.
    with Broker(tmp_path / "broker", pki=pki, platforms=("platform", "intruder")) as tls_broker, \
            building(tmp_path / "building") as b:  # fmt: skip
        files = tls_broker.credentials(GW)
        with b.config_path.open("a") as config:
            config.write(f"""
[mqtt]
host = "{tls_broker.host}"
port = {tls_broker.port}
tls = true
ca_file = "{tls_broker.ca_file}"
cert_file = "{files.cert}"
key_file = "{files.key}"
command_public_key = "{public_key_text(key)}"
keepalive_seconds = 5
""")
        mine = tls_broker.credentials("platform")
        platform = Platform(PlatformSettings(
            host=tls_broker.host, port=tls_broker.port, db=tmp_path / "platform.db",
            client_id="platform", signing_key=key,
            tls=PlatformTls(str(tls_broker.ca_file), str(mine.cert), str(mine.key)),
        )).start()  # fmt: skip
        platform.wait_connected()
        world = City(b, tls_broker, platform, key)
        world.gateway.start()
        try:
            assert wait_until(lambda: all(d.online for d in world.gateway.doors.values()))
            # The uplink is its own part now, and may connect after the readers are up: a
            # command sent before it subscribed would be lost. It subscribes, then says
            # "online", so the city seeing that status means its commands will arrive.
            assert wait_until(lambda: platform.stats.statuses >= 1)
            yield world
        finally:
            world.gateway.stop()
            platform.stop()


def _tenant(n: int, card: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n)), "name": f"城市居民{n}", "id_number": id_number(700 + n),
        "phone": f"137{n:08d}", "room": "801", "valid_from": "2026-01-01",
        "valid_until": "2030-12-31", "status": "active",
        "cards": [{"number": card, "status": "active"}],
    }  # fmt: skip


def test_a_swipe_reaches_the_city_and_is_acknowledged(city: City) -> None:
    reader = city.building.readers["main"]
    reader.present_card(city.building.cards["valid"])
    assert wait_until(lambda: len(city.stored("access.granted")) == 1)
    event = city.stored("access.granted")[0]
    assert event["gateway_id"] == GW
    assert event["credential"] == {"kind": "card", "number": city.building.cards["valid"]}
    store = city.gateway.store
    assert store is not None
    # The city's ack, not the broker's PUBACK, empties the gateway's pending set.
    assert wait_until(lambda: city.platform.watermark(GW) >= event["seq"])
    assert wait_until(lambda: store.acked_seq() >= event["seq"])
    assert all(e.seq > event["seq"] for e in store.pending_events())
    status = city.platform.status(GW)
    assert status is not None
    assert status["state"] == "online"
    # What the city's fleet page shows: where it is, its clock, its readers and camera.
    assert status["building"] == "440305001002-0042"
    assert isinstance(status["clock_synced"], bool)
    assert status["readers_offline"] == []
    assert status["camera"] is None  # this building has none
    assert city.platform.gateway(GW)["building_code"] == "440305001002-0042"


def test_the_city_registry_and_a_signed_unlock_come_down(city: City) -> None:
    reader = city.building.readers["main"]
    counter = city.platform.send_registry(GW, 1, None, [_tenant(1, 9_100_001)], [])
    result = city.platform.wait_result(GW, counter)
    assert (result.ok, result.error) == (True, None)
    reader.present_card(9_100_001)
    assert wait_until(lambda: any(e["credential"]["number"] == 9_100_001
                                  for e in city.stored("access.granted")))  # fmt: skip
    # A delta against a version the gateway does not have: nothing applied, full resend asked.
    counter = city.platform.send_registry(GW, 3, 2, [_tenant(2, 9_100_002)], [])
    assert city.platform.wait_result(GW, counter).error == "version_gap"
    store = city.gateway.store
    assert store is not None
    assert store.card_lookup(9_100_002) is None
    counter = city.platform.send_command(GW, "unlock", {"door": "main", "seconds": 3})
    assert city.platform.wait_result(GW, counter).ok
    assert reader.wait_for_output(timeout=5) is not None
    assert wait_until(lambda: len(city.stored("command.executed")) == 2)
    executed = city.stored("command.executed")
    assert [e["cmd"] for e in executed] == ["registry.apply", "unlock"]
    assert "id_number" not in json.dumps(executed, ensure_ascii=False)


def test_forged_and_replayed_commands_change_nothing(city: City) -> None:
    probe = MqttProbe.connect(city.broker, identity="intruder")
    forged_key = Ed25519PrivateKey.generate()
    reader = city.building.readers["main"]
    before = len(reader.commands)
    store = city.gateway.store
    assert store is not None
    now_counter = int(time.time() * 1000)
    genuine = seal_command(city.key, gateway_id=GW, counter=now_counter, cmd="lockdown",
                           args={"on": True})  # fmt: skip
    attempts = [
        seal_command(forged_key, gateway_id=GW, counter=now_counter + 1, cmd="unlock",
                     args={"door": "main", "seconds": 5}),
        b"not json",
        json.dumps({"payload": "{}", "sig": ""}).encode(),
        seal_command(city.key, gateway_id="gw-test-0002", counter=now_counter + 2, cmd="unlock",
                     args={"door": "main", "seconds": 5}),
        genuine,
        genuine,  # the same envelope recorded and replayed
    ]  # fmt: skip
    for envelope in attempts:
        assert probe.publish_wait(f"{P}/cmd", envelope) == 0
    assert wait_until(lambda: len(city.stored("command.rejected")) == 5)
    reasons = [e["reason"] for e in city.stored("command.rejected")]
    assert reasons == ["bad_signature", "malformed", "bad_signature", "wrong_gateway", "replayed"]
    assert [e["cmd"] for e in city.stored("command.executed")] == ["lockdown"]
    assert store.lockdown()
    # No forged unlock reached the reader: the only output would have been an OUT command.
    time.sleep(0.5)
    assert [c for c in reader.commands[before:] if c.kind == "output"] == []
    probe.close()


def test_a_local_registration_goes_up_as_tenant_changed(city: City) -> None:
    from datetime import date

    from gateway.store import TenantCreate

    store = city.gateway.store
    assert store is not None
    tenant = store.add_tenant(TenantCreate(
        name="本地登记", id_number=id_number(901), phone="13900009999", room="902",
        valid_from=date(2026, 1, 1), valid_until=date(2030, 1, 1), cards=(9_200_001,),
    ))  # fmt: skip
    store.remove_tenant(tenant.id)

    def changes() -> list[dict[str, Any]]:
        return [e for e in city.stored("tenant.changed") if e["tenant"]["id"] == tenant.id]

    assert wait_until(lambda: len(changes()) == 2)
    added, removed = changes()
    assert (added["change"], removed["change"]) == ("added", "removed")
    assert added["tenant"]["id"] == tenant.id
    assert added["tenant"]["id_number"] == id_number(901)  # the city needs who it is
    assert added["tenant"]["cards"] == [{"number": 9_200_001, "status": "active"}]
