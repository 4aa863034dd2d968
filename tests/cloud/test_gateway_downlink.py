"""The whole gateway survives hostile downlink messages, and says so when a thread dies anyway.

The gateway, a TLS broker with identity ACLs and the reference platform, as in
test_gateway_uplink.py. "intruder" holds the platform's broker rights (a stolen certificate)
but not its signing key: everything it sends on `P/ack` and `P/cmd` must be refused without
stopping the threads that serve the real platform.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.uplink import Uplink

from .mqtt import MqttProbe
from .test_gateway_uplink import GW, City, P, city, wait_until

__all__ = ["city"]  # the fixture, shared with test_gateway_uplink.py

NESTED = b"[" * 100_000  # json.loads raised RecursionError: the thread parsing it died


def uplink_of(world: City) -> Uplink:
    uplink = world.gateway.uplink
    assert uplink is not None
    return uplink


def swipe_reaches_the_city(world: City) -> None:
    """A card swipe is stored by the city and the gateway takes the city's ack for it."""
    before = len(world.stored("access.granted"))
    world.building.readers["main"].present_card(world.building.cards["valid"])
    assert wait_until(lambda: len(world.stored("access.granted")) == before + 1)
    seq = world.stored("access.granted")[-1]["seq"]
    store = world.gateway.store
    assert store is not None
    assert wait_until(lambda: store.acked_seq() >= seq)


def test_nested_json_on_ack_does_not_stop_the_uplink(city: City) -> None:
    intruder = MqttProbe.connect(city.broker, identity="intruder")
    assert intruder.publish_wait(f"{P}/ack", NESTED) == 0
    assert wait_until(lambda: uplink_of(city).health()["downlink_refused"] == 1)
    assert uplink_of(city).health()["downlink_refusals"] == {"too_large": 1}
    small = b"[" * 200  # within the ack's size: refused for its depth
    assert intruder.publish_wait(f"{P}/ack", small) == 0
    assert wait_until(lambda: uplink_of(city).health()["downlink_refused"] == 2)
    assert uplink_of(city).health()["downlink_refusals"] == {"too_large": 1, "too_deep": 1}
    swipe_reaches_the_city(city)
    assert city.gateway.health()["uplink"]["threads_alive"] is True
    intruder.close()


def test_nested_json_on_cmd_does_not_stop_commands(city: City) -> None:
    intruder = MqttProbe.connect(city.broker, identity="intruder")
    assert intruder.publish_wait(f"{P}/cmd", NESTED) == 0
    assert wait_until(lambda: len(city.stored("command.rejected")) == 1)
    assert city.stored("command.rejected")[0]["reason"] == "malformed"
    counter = city.platform.send_command(GW, "unlock", {"door": "main", "seconds": 3})
    assert city.platform.wait_result(GW, counter).ok
    assert city.building.readers["main"].wait_for_output(timeout=5) is not None
    health = city.gateway.health()
    assert health["uplink"]["commands_rejected"] == 1
    assert health["uplink"]["threads_alive"] is True
    intruder.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_uplink_thread_fails_health(city: City) -> None:
    uplink = uplink_of(city)
    assert "uplink thread stopped" not in city.gateway.health()["problems"]

    def fault() -> None:
        raise RuntimeError("injected fault on the uplink thread")

    uplink.runner.call_soon(fault)
    # The door path still works and nothing else would tell: only health can.
    assert wait_until(lambda: "uplink thread stopped" in city.gateway.health()["problems"])
    health = city.gateway.health()
    assert health["status"] == "failing"
    assert health["uplink"]["threads_alive"] is False


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_command_worker_fails_health(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    uplink = uplink_of(city)

    def fault(envelope: bytes) -> dict[str, Any]:
        raise RuntimeError("injected fault on the command worker")

    monkeypatch.setattr(uplink.executor, "execute", fault)
    counter = city.platform.send_command(GW, "lockdown", {"on": True})
    assert counter > 0
    assert wait_until(lambda: "command worker stopped" in city.gateway.health()["problems"])
    assert city.gateway.health()["status"] == "failing"
