"""A card at a real OSDP reader (libosdp on a pty) opens the door exactly when the registry says.

The whole gateway runs in-process: control panel, store on disk, decisions, journal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.service import Gateway
from gateway.store import JournalEntry
from tests.e2e.building import Building, building


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


class Running:
    """A started gateway and the events it committed."""

    def __init__(self, b: Building, *, web: bool = False) -> None:
        self.building = b
        self.gateway = Gateway(b.config, web=web)
        self.events: list[JournalEntry] = []
        self.gateway.add_listener(self.events.append)

    def start(self) -> Running:
        self.gateway.start()
        assert wait_until(lambda: all(d.online for d in self.gateway.doors.values()), 15), (
            "readers did not come online")
        return self

    def access_events(self) -> list[dict[str, Any]]:
        return [e.body for e in self.events if e.body["type"].startswith("access.")]

    def next_access(self, count: int, timeout: float = 5.0) -> dict[str, Any]:
        assert wait_until(lambda: len(self.access_events()) >= count, timeout), (
            f"no access event #{count}")
        return self.access_events()[count - 1]


@pytest.fixture(params=[False, True], ids=["plain", "secure"])
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with building(tmp_path, secure=request.param, contact=True) as b:
        r = Running(b).start()
        try:
            yield r
        finally:
            r.gateway.stop()


EXPECTED = [
    ("valid", True, "tenant_card"),
    ("valid34", True, "tenant_card"),
    ("expired", False, "expired"),
    ("future", False, "not_yet_valid"),
    ("suspended", False, "suspended"),
    ("lost", False, "lost_card"),
    ("unknown", False, "unknown_card"),
]


def test_cards_open_the_door_exactly_when_the_registry_says(running: Running) -> None:
    reader = running.building.readers["main"]
    cards = running.building.cards
    if running.building.keys["main"] is not None:
        assert reader.secure_channel_active
    for n, (kind, granted, reason) in enumerate(EXPECTED, start=1):
        bits = 34 if kind == "valid34" else 26
        reader.present_card(cards[kind], bits)
        event = running.next_access(n)
        assert event["type"] == ("access.granted" if granted else "access.denied"), kind
        assert event["reason"] == reason
        assert event["credential"] == {"kind": "card", "number": cards[kind]}
        assert event["door"] == "main"
        assert event["snapshot"] is None
        assert event["snapshot_error"] == "disabled"
        output = reader.wait_for_output(timeout=3.0 if granted else 0.5)
        if granted:
            assert output is not None, f"{kind}: no OUT reached the reader"
            assert output.fields["output_no"] == 0
            assert output.fields["control_code"] == 5  # on for the timer, then back
            assert output.fields["timer_count"] == 40  # 4 s in 100 ms units
            led = reader.wait_for("led", 2.0)
            assert led is not None
        else:
            assert output is None, f"{kind}: the lock was pulsed for a denied card"
    lost = [e for e in running.events if e.body.get("reason") == "lost_card"]
    assert len(lost) == 1
    store = running.gateway.store
    assert store is not None
    assert [a.kind for a in store.list_alarms()] == ["lost_card"]


def test_a_bad_parity_read_is_denied_without_lookup(running: Running) -> None:
    reader = running.building.readers["main"]
    # 26 bits of the valid card with its last (odd parity) bit flipped.
    from firmware_bridge.wiegand import encode

    bits = bytearray(encode(running.building.cards["valid"], 26))
    bits[3] ^= 0x40
    reader.present_raw(26, bytes(bits))
    event = running.next_access(1)
    assert (event["type"], event["reason"]) == ("access.denied", "bad_read")
    assert event.get("tenant_id") is None
    assert reader.wait_for_output(0.5) is None


def test_no_relay_pulse_at_start_up(running: Running) -> None:
    time.sleep(1.0)  # several poll cycles after coming online
    assert [c for c in running.building.readers["main"].commands if c.kind == "output"] == []


def test_forced_and_held_open_door(running: Running) -> None:
    reader = running.building.readers["main"]
    reader.set_input(0, True)  # opened without a card
    assert wait_until(lambda: any(e.body["type"] == "door.forced" for e in running.events))
    reader.set_input(0, False)
    reader.present_card(running.building.cards["valid"])
    running.next_access(1)
    reader.set_input(0, True)  # a normal entry: not forced
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not any(
            e.body["type"] == "door.held_open" for e in running.events):
        running.gateway.tick()  # the service's main loop does this five times a second
        time.sleep(0.1)
    kinds = [e.body["type"] for e in running.events]
    assert kinds.count("door.forced") == 1
    assert "door.held_open" in kinds
    store = running.gateway.store
    assert store is not None
    assert sorted(a.kind for a in store.list_alarms()) == ["door_forced", "door_held_open"]


def test_reader_unplugged_and_back(running: Running) -> None:
    reader = running.building.readers["main"]
    reader.unplug()
    assert wait_until(lambda: any(e.body["type"] == "reader.offline" for e in running.events),
                      15)
    reader.replug()
    assert wait_until(lambda: any(e.body["type"] == "reader.online" for e in running.events),
                      10)
    reader.present_card(running.building.cards["valid"])
    assert running.next_access(1)["type"] == "access.granted"


def test_journal_seq_is_contiguous_and_events_are_complete(running: Running) -> None:
    reader = running.building.readers["main"]
    for n in range(1, 11):
        reader.present_card(running.building.cards["valid" if n % 2 else "unknown"])
        running.next_access(n)
    seqs = [e.seq for e in running.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for entry in running.events:
        body = entry.body
        assert body["schema"] == 1
        assert body["gateway_id"] == "gw-test-0001"
        assert body["seq"] == entry.seq
        assert body["ts"].endswith("+08:00")
        assert isinstance(body["clock_synced"], bool)


def test_healthz_is_served_without_personal_data(tmp_path: Path) -> None:
    with building(tmp_path) as b:
        r = Running(b, web=True).start()
        try:
            response = httpx.get(f"http://127.0.0.1:{b.web_port}/healthz", timeout=5)
        finally:
            r.gateway.stop()
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["doors"]["main"]["reader_online"] is True
    assert report["doors"]["main"]["secure_channel"] is False
    assert "租客" not in response.text


def test_a_reader_with_the_wrong_key_is_never_used(tmp_path: Path) -> None:
    from firmware_bridge.osdp.simulator import SimulatedReader

    with building(tmp_path, secure=True) as b:
        b.readers["main"].stop()
        impostor = SimulatedReader(b.bus, 1, scbk=bytes(16 * [0x5A])).start()
        gateway = Gateway(b.config, web=False)
        events: list[JournalEntry] = []
        gateway.add_listener(events.append)
        gateway.start()
        try:
            assert wait_until(lambda: any(e.body["type"] == "reader.offline" for e in events))
            offline = next(e.body for e in events if e.body["type"] == "reader.offline")
            assert "secure channel" in offline["reason"]
            impostor.present_card(b.cards["valid"])
            time.sleep(1.0)
            assert not any(e.body["type"].startswith("access.") for e in events)
            assert impostor.wait_for_output(0.2) is None
            assert gateway.doors["main"].online is False
        finally:
            gateway.stop()
            impostor.stop()


def test_visitor_code_at_the_keypad(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    with building(tmp_path) as b:
        with b.open_store() as store:
            code = store.create_visitor_code(
                door="main", valid_until=datetime.now(UTC) + timedelta(hours=2), max_uses=2,
                created_by="building-head", room="301").code
        r = Running(b).start()
        try:
            reader = b.readers["main"]
            for n in range(1, 4):
                reader.press_keys(code + "#")
                event = r.next_access(n)
                assert event["credential"]["kind"] == "visitor_code"
                assert code not in str(event)  # the code itself is never journaled
            results = [(e["type"], e["reason"]) for e in r.access_events()]
            assert results == [("access.granted", "visitor_code"),
                               ("access.granted", "visitor_code"),
                               ("access.denied", "code_used_up")]
            assert len([c for c in reader.commands if c.kind == "output"]) == 2
        finally:
            r.gateway.stop()


def test_card_and_pin_door(tmp_path: Path) -> None:
    with building(tmp_path) as b:
        text = b.config_path.read_text().replace(
            'name = "main"', 'name = "main"\npin_required = true\npin_timeout_seconds = 5')
        b.config_path.write_text(text)
        with b.open_store() as store:
            store.set_card_pin(b.cards["valid"], "2468")
        r = Running(b).start()
        try:
            reader = b.readers["main"]
            reader.present_card(b.cards["valid"])
            time.sleep(0.3)
            assert r.access_events() == []  # waiting for the PIN
            reader.press_keys("1357#")
            assert r.next_access(1)["reason"] == "wrong_pin"
            reader.present_card(b.cards["valid"])
            time.sleep(0.3)
            reader.press_keys("2468#")
            granted = r.next_access(2)
            assert (granted["type"], granted["reason"]) == ("access.granted", "tenant_card")
            assert "2468" not in str(r.events)
            assert reader.wait_for_output(3.0) is not None
        finally:
            r.gateway.stop()
