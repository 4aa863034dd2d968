"""The door state machine: ordering of journal and relay, contact, PIN, keypad, reader state.

The panel, registry and journal here are small recording stand-ins; the same controller runs
against real OSDP readers and the real store in tests/test_end_to_end.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from gateway.door import DoorController, DoorSettings, VisitorCodeOutcome


@dataclass(frozen=True)
class Record:
    card_status: str = "active"
    tenant_id: str = "t-1"
    tenant_status: str = "active"
    room: str = "301"
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass
class World:
    """Records every call in one ordered log, so tests can check what happened first."""

    log: list[tuple[str, Any]] = field(default_factory=list)
    cards: dict[int, Record] = field(default_factory=dict)
    pins: dict[int, str] = field(default_factory=dict)
    codes: dict[str, VisitorCodeOutcome] = field(default_factory=dict)
    locked_down: bool = False
    now: float = 1000.0
    fail_journal: bool = False

    # Panel
    def pulse_output(self, address: int, output: int = 0, seconds: float = 5.0) -> None:
        self.log.append(("pulse", (address, output, seconds)))

    def led(self, address: int, color: str = "green", *, on_ms: int = 500, off_ms: int = 0,
            duration_ms: int = 2000) -> None:
        self.log.append(("led", color))

    def beep(self, address: int, count: int = 1, on_ms: int = 200, off_ms: int = 200) -> None:
        self.log.append(("beep", count))

    # Registry
    def card_lookup(self, number: int) -> Record | None:
        return self.cards.get(number)

    def verify_pin(self, card_number: int, pin: str) -> bool:
        return self.pins.get(card_number) == pin

    def use_visitor_code(self, code: str, door: str) -> VisitorCodeOutcome:
        return self.codes.get(code, VisitorCodeOutcome(False, "unknown_code"))

    def lockdown(self) -> bool:
        return self.locked_down

    # Journal
    def record(self, event: dict[str, Any], alarm: str | None = None) -> int:
        if self.fail_journal:
            raise OSError(28, "No space left on device")
        self.log.append(("event", (event, alarm)))
        return len(self.log)

    def events(self) -> list[dict[str, Any]]:
        return [e for kind, (e, _a) in ((k, v) for k, v in self.log if k == "event") if kind]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.log]


def make_door(world: World, **settings: Any) -> DoorController:
    base: dict[str, Any] = {"name": "main", "address": 1, "contact_input": 0,
                            "unlock_seconds": 5.0, "held_open_seconds": 60.0}
    base.update(settings)
    return DoorController(
        DoorSettings(**base),
        panel=world,
        registry=world,
        journal=world,
        today=lambda: date(2026, 11, 26),
        stamp=lambda: {"ts": "2026-11-26T20:00:00.000+08:00", "clock_synced": True},
        monotonic=lambda: world.now,
    )


def test_grant_is_journaled_before_the_relay_pulses() -> None:
    world = World(cards={42: Record()})
    door = make_door(world)
    assert door.on_card(42, True, 0).granted
    assert world.kinds()[:2] == ["event", "pulse"]
    event, alarm = world.log[0][1]
    assert event["type"] == "access.granted"
    assert event["credential"] == {"kind": "card", "number": 42}
    assert (event["tenant_id"], event["room"], event["reason"]) == ("t-1", "301", "tenant_card")
    assert alarm is None
    assert world.log[1][1] == (1, 0, 5.0)
    assert ("led", "green") in world.log
    assert ("beep", 1) in world.log


def test_denial_never_pulses_and_gives_red_and_two_beeps() -> None:
    world = World()
    door = make_door(world)
    assert door.on_card(7, True, 0).reason == "unknown_card"
    assert "pulse" not in world.kinds()
    assert ("led", "red") in world.log
    assert ("beep", 2) in world.log
    assert world.events()[0]["type"] == "access.denied"


def test_a_failing_journal_keeps_the_door_shut() -> None:
    world = World(cards={42: Record()}, fail_journal=True)
    door = make_door(world)
    with pytest.raises(OSError, match="No space"):
        door.on_card(42, True, 0)
    assert "pulse" not in world.kinds()
    assert ("led", "red") in world.log


def test_lost_card_raises_alarm() -> None:
    world = World(cards={5: Record(card_status="lost")})
    make_door(world).on_card(5, True, 0)
    event, alarm = world.log[0][1]
    assert (event["reason"], alarm) == ("lost_card", "lost_card")


def test_opening_without_grant_is_forced_and_with_grant_is_not() -> None:
    world = World(cards={42: Record()})
    door = make_door(world)
    door.on_inputs((False,))  # first report: closed
    door.on_card(42, True, 0)
    world.now += 1
    door.on_inputs((True,))
    door.on_inputs((False,))
    assert [e["type"] for e in world.events()] == ["access.granted"]
    world.now += 60
    door.on_inputs((True,))
    forced = world.events()[-1]
    assert forced["type"] == "door.forced"
    assert world.log[-1][1][1] == "door_forced"


def test_held_open_reported_once_per_opening() -> None:
    world = World(cards={42: Record()})
    door = make_door(world, held_open_seconds=30)
    door.on_inputs((False,))
    door.on_card(42, True, 0)
    door.on_inputs((True,))
    world.now += 29
    door.tick()
    assert [e["type"] for e in world.events()] == ["access.granted"]
    world.now += 2
    door.tick()
    door.tick()
    assert [e["type"] for e in world.events()] == ["access.granted", "door.held_open"]
    door.on_inputs((False,))
    world.now += 100
    door.tick()
    assert len(world.events()) == 2


def test_door_open_at_start_is_not_forced() -> None:
    world = World()
    door = make_door(world)
    door.on_inputs((True,))
    assert world.events() == []


def test_pin_door_waits_for_pin_then_grants() -> None:
    world = World(cards={42: Record()}, pins={42: "2468"})
    door = make_door(world, pin_required=True)
    assert door.on_card(42, True, 0).reason == "pin_required"
    assert world.events() == []
    door.on_keypad("2468#")
    assert world.events()[0]["type"] == "access.granted"
    assert "pulse" in world.kinds()
    assert "2468" not in repr(world.events())  # a PIN is never recorded


def test_pin_door_wrong_pin_and_timeout() -> None:
    world = World(cards={42: Record()}, pins={42: "2468"})
    door = make_door(world, pin_required=True, pin_timeout_seconds=10)
    door.on_card(42, True, 0)
    door.on_keypad("1111#")
    door.on_card(42, True, 0)
    world.now += 11
    door.tick()
    assert [e["reason"] for e in world.events()] == ["wrong_pin", "pin_timeout"]
    assert "pulse" not in world.kinds()


def test_pin_door_still_refuses_an_unknown_card_at_once() -> None:
    world = World()
    door = make_door(world, pin_required=True)
    assert door.on_card(9, True, 0).reason == "unknown_card"
    assert world.events()[0]["type"] == "access.denied"


def test_visitor_code_via_keypad() -> None:
    world = World(codes={"123456": VisitorCodeOutcome(True, "visitor_code", 11, "302")})
    door = make_door(world)
    door.on_keypad("12")
    door.on_keypad("3456#")
    event = world.events()[0]
    assert (event["type"], event["credential"], event["room"]) == (
        "access.granted", {"kind": "visitor_code", "code_id": 11}, "302")
    door.on_keypad("99*123456#")  # '*' clears the 99
    door.on_keypad("000#")
    assert [e["reason"] for e in world.events()[1:]] == ["visitor_code", "unknown_code"]


def test_keypad_digits_expire() -> None:
    world = World(codes={"1234": VisitorCodeOutcome(True, "visitor_code", 12, None)})
    door = make_door(world)
    door.on_keypad("12")
    world.now += 30
    door.on_keypad("34#")
    assert world.events()[0]["reason"] == "unknown_code"


def test_lockdown_refuses_visitor_codes() -> None:
    world = World(codes={"1234": VisitorCodeOutcome(True, "visitor_code", 12, None)},
                  locked_down=True)
    make_door(world).on_keypad("1234#")
    assert world.events()[0]["reason"] == "lockdown"


def test_reader_online_offline_and_tamper_on_change_only() -> None:
    world = World()
    door = make_door(world)
    door.on_reader_online(True, secure=True)  # first contact: not news
    door.on_reader_online(True, secure=True)
    door.on_reader_online(False, reason="no reply for 8 s")
    door.on_reader_online(False, reason="no reply for 8 s")
    door.on_reader_online(True, secure=True)
    door.on_tamper(False)
    door.on_tamper(True)
    door.on_tamper(True)
    assert [e["type"] for e in world.events()] == ["reader.offline", "reader.online",
                                                  "reader.tamper"]
    assert world.log[-1][1][1] == "reader_tamper"
