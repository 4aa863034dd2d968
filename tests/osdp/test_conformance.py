"""The control panel against libosdp's PeripheralDevice over a pseudo-terminal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmware_bridge.osdp import (
    CardRead,
    ControlPanel,
    InputChanged,
    KeypadInput,
    ReaderOffline,
    ReaderOnline,
    ReaderSpec,
    SecureChannelFailed,
    TamperChanged,
)
from firmware_bridge.osdp.simulator import SimulatedReader

from .conftest import EventLog, open_door_on_card, wait_until

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OTHER_KEY = bytes(16)

MakeCp = Callable[..., ControlPanel]
MakeReader = Callable[..., SimulatedReader]


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_reader_comes_online_with_id_and_capabilities(
    secure: bool, make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    key = KEY if secure else None
    sim = make_reader(1, scbk=key)
    cp = make_cp(ReaderSpec(1, scbk=key))
    online = log.wait(ReaderOnline, address=1)
    assert online.secure is secure
    assert online.pd_id is not None
    assert online.pd_id.serial_number == 0xDEADBEAF
    status = cp.status(1)
    assert status.online
    assert status.secure is secure
    assert {cap.function for cap in status.capabilities} >= {1, 2, 3, 4}  # inputs..buzzer
    assert sim.secure_channel_active is secure


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
@pytest.mark.parametrize(("number", "bits", "fmt"),
                         [(1234567, 26, "h10301"), (0xDEADBEEF, 34, "wiegand34")])
def test_card_read_arrives_and_door_pulse_reaches_the_reader(
    secure: bool, number: int, bits: int, fmt: str,
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog,
) -> None:
    key = KEY if secure else None
    sim = make_reader(1, scbk=key)
    cp = make_cp(ReaderSpec(1, scbk=key))
    log.handlers.append(open_door_on_card(cp))
    log.wait(ReaderOnline, address=1)
    sim.present_card(number, bits)
    card = log.wait(CardRead, address=1)
    assert (card.number, card.bit_count, card.parity_ok, card.format) == (number, bits, True, fmt)
    assert card.received_at > 0
    out = sim.wait_for_output(timeout=5)
    assert out is not None
    assert out.fields == {"output_no": 0, "control_code": 5, "timer_count": 50}


def test_bad_parity_and_odd_lengths_are_reported_not_dropped(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1)
    make_cp(ReaderSpec(1))
    log.wait(ReaderOnline)
    sim.present_raw(26, bytes.fromhex("000000c0"))  # trailing parity 1 over zero data: wrong
    sim.present_raw(37, bytes.fromhex("123456789f"))
    bad = log.wait(CardRead, bit_count=26)
    assert bad.parity_ok is False
    odd = log.wait(CardRead, bit_count=37)
    assert odd.parity_ok is None
    assert odd.format == "raw"
    assert odd.number == int.from_bytes(bytes.fromhex("123456789f"), "big") >> 3


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_keypad_inputs_and_tamper(
    secure: bool, make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    key = KEY if secure else None
    sim = make_reader(1, scbk=key, inputs=2)
    make_cp(ReaderSpec(1, scbk=key))
    log.wait(ReaderOnline)
    # The first input state is known soon after coming online (ISTAT at bring-up).
    log.wait(InputChanged, address=1, inputs=(False, False))
    sim.press_keys("1234#")
    assert log.wait(KeypadInput).digits == "1234#"
    sim.set_input(1, True)
    log.wait(InputChanged, inputs=(False, True))
    sim.set_tamper(True)
    log.wait(TamperChanged, tamper=True)
    sim.set_tamper(False)
    log.wait(TamperChanged, tamper=False)


def test_led_and_buzzer_arrive(make_cp: MakeCp, make_reader: MakeReader, log: EventLog) -> None:
    sim = make_reader(1, scbk=KEY)
    cp = make_cp(ReaderSpec(1, scbk=KEY))
    log.wait(ReaderOnline)
    assert cp.led(1, "red", on_ms=300, off_ms=200, duration_ms=3000)
    led = sim.wait_for("led")
    assert led is not None
    assert {k: led.fields[k] for k in ("on_color", "off_color", "on_count", "off_count",
                                        "timer_count", "temporary")} == {
        "on_color": 1, "off_color": 0, "on_count": 3, "off_count": 2, "timer_count": 30,
        "temporary": True}
    assert cp.beep(1, count=3, on_ms=100, off_ms=100)
    buz = sim.wait_for("buzzer")
    assert buz is not None
    assert {k: buz.fields[k] for k in ("on_count", "off_count", "rep_count")} == {
        "on_count": 1, "off_count": 1, "rep_count": 3}
    assert cp.set_output(1, 0, on=True)
    out = sim.wait_for_output()
    assert out is not None
    assert out.fields["control_code"] == 2


def test_two_readers_on_one_bus(make_cp: MakeCp, make_reader: MakeReader, log: EventLog) -> None:
    plain = make_reader(3)
    secure = make_reader(7, scbk=KEY)
    cp = make_cp(ReaderSpec(3), ReaderSpec(7, scbk=KEY))
    log.handlers.append(open_door_on_card(cp, seconds=2.0))
    log.wait(ReaderOnline, address=3)
    log.wait(ReaderOnline, address=7)
    plain.present_card(111)
    secure.present_card(222)
    assert log.wait(CardRead, address=3).number == 111
    assert log.wait(CardRead, address=7).number == 222
    assert plain.wait_for_output() is not None
    assert secure.wait_for_output() is not None
    assert cp.status(3).online
    assert cp.status(7).online
    assert cp.status(7).secure


def test_wrong_key_never_yields_card_reads(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1, scbk=OTHER_KEY)
    cp = make_cp(ReaderSpec(1, scbk=KEY))
    failed = log.wait(SecureChannelFailed, address=1)
    assert "another key" in failed.reason
    sim.present_card(42)
    log.wait(ReaderOffline, address=1)  # never came online within the offline time
    assert not log.of(CardRead)
    assert not log.of(ReaderOnline)
    status = cp.status(1)
    assert not status.online
    assert not status.secure
    assert status.errors["sc_failed"] >= 1
    assert not cp.pulse_output(1)


def test_keyed_reader_that_refuses_the_secure_channel_is_not_used(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1, refuse_secure_channel=True)
    cp = make_cp(ReaderSpec(1, scbk=KEY))
    failed = log.wait(SecureChannelFailed, address=1)
    assert "refused" in failed.reason
    sim.present_card(42)
    log.wait(ReaderOffline, address=1)
    assert not log.of(CardRead)
    assert not cp.status(1).online


def test_plain_reader_that_demands_security_is_reported(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    make_reader(1, scbk=KEY)  # enforces the secure channel
    cp = make_cp(ReaderSpec(1))
    assert "no key" in log.wait(SecureChannelFailed, address=1).reason
    assert not cp.status(1).online


def test_install_mode_gets_its_key_and_comes_back_secure(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1, install_mode=True)
    cp = make_cp(ReaderSpec(1))
    log.wait(ReaderOnline, secure=False)
    done = cp.set_reader_key(1, KEY)
    done.result(timeout=10)
    keyset = sim.wait_for("keyset")
    assert keyset is not None
    assert keyset.fields["data"] == KEY
    assert cp.status(1).secure
    assert cp.status(1).online
    assert sim.secure_channel_active
    sim.present_card(77)
    assert log.wait(CardRead).number == 77


def test_comset_moves_the_reader(make_cp: MakeCp, make_reader: MakeReader, log: EventLog) -> None:
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1))
    log.wait(ReaderOnline)
    com = cp.set_reader_address_and_baud(1, 9, 9600).result(timeout=5)
    assert (com.address, com.baud) == (9, 9600)
    comset = sim.wait_for("comset")
    assert comset is not None
    assert comset.fields["address"] == 9
    wait_until(lambda: cp.status(9).online)
    sim.present_card(5)
    assert log.wait(CardRead, address=9).number == 5


def test_mark_byte(make_cp: MakeCp, make_reader: MakeReader, log: EventLog) -> None:
    sim = make_reader(1)
    make_cp(ReaderSpec(1), mark_byte=True)
    log.wait(ReaderOnline)
    sim.present_card(99)
    assert log.wait(CardRead).number == 99
