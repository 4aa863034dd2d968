"""Noise, corrupted, cut, late, misaddressed and lost replies: the CP counts and carries on."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from firmware_bridge.osdp import (
    BusTiming,
    CardRead,
    ControlPanel,
    ReaderOffline,
    ReaderOnline,
    ReaderSpec,
)
from firmware_bridge.osdp.codec import encode_frame
from firmware_bridge.osdp.crc import crc16
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader

from .conftest import EventLog, open_door_on_card, wait_until

MakeCp = Callable[..., ControlPanel]
MakeReader = Callable[..., SimulatedReader]
KEY = bytes(range(16))


def total_errors(cp: ControlPanel, *kinds: str) -> int:
    """Return the sum of the named error counters over all readers (all counters if none)."""
    return sum(
        count for status in cp.readers() for kind, count in status.errors.items()
        if not kinds or kind in kinds
    )


def assert_cards_still_arrive(sim: SimulatedReader, log: EventLog, first: int) -> None:
    for number in range(first, first + 3):
        sim.present_card(number)
        log.wait(CardRead, number=number)


def test_random_noise_between_and_over_frames(
    bus: SimulatedBus, make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1, scbk=KEY)
    cp = make_cp(ReaderSpec(1, scbk=KEY))
    log.wait(ReaderOnline)
    rng = random.Random(1)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        bus.inject(rng.randbytes(rng.randint(1, 40)) + b"\x53")  # SOMs included on purpose
        time.sleep(rng.uniform(0.0, 0.03))
    wait_until(lambda: total_errors(cp) > 0)
    assert_cards_still_arrive(sim, log, 100)
    assert cp.status(1).online
    print("errors after noise:", cp.status(1).errors)


def _flip_a_bit(data: bytes) -> bytes:
    i = random.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << random.randrange(8))]) + data[i + 1 :]


def test_corrupted_and_truncated_replies(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1), timing=BusTiming())  # 12 lost replies take 2.4 s: stay online
    log.wait(ReaderOnline)
    faults: list[Callable[[bytes], bytes]] = [
        _flip_a_bit, lambda d: d[: len(d) // 2], _flip_a_bit, lambda d: d[:3]] * 3

    def fault(data: bytes) -> bytes:
        return faults.pop(0)(data) if faults else data

    sim.channel.reply_filter = fault
    wait_until(lambda: not faults)
    sim.channel.reply_filter = None
    errors = cp.status(1).errors
    assert errors.get("timeout", 0) >= 1
    assert errors.get("bad_check", 0) + errors.get("truncated", 0) + errors.get("garbage", 0) >= 1
    assert cp.status(1).online
    assert_cards_still_arrive(sim, log, 200)


def test_late_replies_are_timeouts_then_recover(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1), timing=BusTiming(offline_after=3.0, probe_interval=0.2))
    log.wait(ReaderOnline)
    sim.channel.reply_delay = 0.3  # beyond the 200 ms an OSDP PD is allowed
    wait_until(lambda: cp.status(1).errors.get("timeout", 0) >= 3)
    sim.channel.reply_delay = 0.0
    # libosdp's PD answers a repeated POLL afresh: a card it gives the retry while the late
    # answer to the first try is still on its way is lost at the reader, whatever the CP does.
    wait_until(lambda: sim.channel.late_replies == 0)
    assert_cards_still_arrive(sim, log, 300)
    print("errors after late replies:", cp.status(1).errors)


def _readdress(data: bytes) -> bytes:
    """Rewrite a reply as if it came from address 5, with a correct CRC."""
    body = bytearray(data[:-2])
    body[1] = 0x85
    crc = crc16(bytes(body))
    return bytes(body) + bytes([crc & 0xFF, crc >> 8])


def test_reply_from_the_wrong_address(
    bus: SimulatedBus, make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1))
    log.wait(ReaderOnline)
    sim.channel.reply_filter = _readdress
    log.wait(ReaderOffline)  # nothing valid comes back
    assert cp.status(1).errors["wrong_address"] >= 1
    # Forged, well-formed frames from nobody, while the reader is back.
    sim.channel.reply_filter = None
    log.wait(ReaderOnline, timeout=5)
    for _ in range(5):
        bus.inject(encode_frame(0x85, 1, 0x40))
        time.sleep(0.02)
    assert_cards_still_arrive(sim, log, 400)


def test_lost_reply_to_a_door_pulse_is_retried_and_harmless(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    """libosdp re-runs a command repeated with the same sequence number: the door pulse is
    given twice, with the same timer, so the strike just stays open from the second one."""
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1))
    log.wait(ReaderOnline)
    sim.drop_reply_after("output")
    assert cp.pulse_output(1, 0, 3.0)
    first = sim.wait_for_output()
    second = sim.wait_for_output()
    assert first is not None
    assert second is not None
    assert first.fields == second.fields == {"output_no": 0, "control_code": 5,
                                             "timer_count": 30}
    assert cp.status(1).errors["timeout"] >= 1
    assert cp.status(1).online


def test_lost_reply_carrying_a_card(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    """What a lost RAW reply costs with libosdp's PD: the POLL retry gets a fresh answer.

    A PD conforming to OSDP would resend its last reply for a repeated sequence number, and
    the card would arrive; libosdp's has already dequeued the event. Either way the reader
    stays online and the next card arrives.
    """
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1))
    log.wait(ReaderOnline)
    dropped = threading.Event()

    def drop_card(data: bytes) -> bytes:
        if not dropped.is_set() and len(data) > 6 and data[5] == 0x50:
            dropped.set()
            return b""
        return data

    sim.channel.reply_filter = drop_card
    sim.present_card(500)
    wait_until(dropped.is_set)
    sim.present_card(501)
    assert log.wait(CardRead, number=501).address == 1
    lost = not any(card.number == 500 for card in log.of(CardRead))
    print("card in a lost reply was", "lost" if lost else "delivered")
    assert cp.status(1).errors["timeout"] >= 1


def test_command_wakes_the_bus_without_waiting_for_the_poll(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1), timing=BusTiming(poll_interval=3.0))
    log.wait(ReaderOnline)
    time.sleep(0.2)  # the loop is now asleep until the next poll, about 3 s away
    sent = time.monotonic()
    assert cp.pulse_output(1)
    assert sim.wait_for_output(timeout=2.5) is not None
    print(f"OUT reached the PD {1000 * (time.monotonic() - sent):.1f} ms after pulse_output")


def test_door_path_on_frame_written(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    written: list[tuple[int, int, int]] = []
    sim = make_reader(1)
    cp = make_cp(ReaderSpec(1), on_frame_written=lambda a, c, ns: written.append((a, c, ns)))
    log.handlers.append(open_door_on_card(cp))
    log.wait(ReaderOnline)
    sim.present_card(9)
    card = log.wait(CardRead)
    assert sim.wait_for_output() is not None
    outs = [ns for address, code, ns in written if code == 0x68 and ns > card.received_at]
    assert outs, written[-5:]
    # The OUT is the first frame written after the card was read: the door path.
    after = [code for _, code, ns in written if ns > card.received_at]
    assert after[0] == 0x68
    print(f"card frame read → OUT written: {(outs[0] - card.received_at) / 1e6:.2f} ms")


def test_bad_reply_mac_drops_the_session_and_sets_it_up_again(
    make_cp: MakeCp, make_reader: MakeReader, log: EventLog
) -> None:
    written: list[int] = []
    sim = make_reader(1, scbk=KEY)
    cp = make_cp(ReaderSpec(1, scbk=KEY), on_frame_written=lambda a, code, ns: written.append(code))
    log.wait(ReaderOnline)
    forged = threading.Event()

    def break_mac(data: bytes) -> bytes:
        if forged.is_set() or len(data) < 14 or data[6] != 0x16:
            return data
        forged.set()
        body = bytearray(data[:-2])
        body[-1] ^= 0xFF  # last MAC byte; the CRC is made right again
        crc = crc16(bytes(body))
        return bytes(body) + bytes([crc & 0xFF, crc >> 8])

    sim.channel.reply_filter = break_mac
    wait_until(forged.is_set)
    wait_until(lambda: cp.status(1).online and written.count(0x76) >= 2)
    assert cp.status(1).errors["bad_mac"] == 1
    assert cp.status(1).secure
    assert not log.of(ReaderOffline)  # re-established within the offline time
    assert_cards_still_arrive(sim, log, 600)
