"""The per-reader protocol state, driven by hand: no port, no threads, time passed in."""

from __future__ import annotations

import doctest

import pytest

from firmware_bridge import wiegand
from firmware_bridge.osdp import codec, crc, panel, secure
from firmware_bridge.osdp.codec import encode_frame, parse_frame
from firmware_bridge.osdp.events import CardRead, InputChanged, ReaderOffline, ReaderOnline
from firmware_bridge.osdp.messages import Command
from firmware_bridge.osdp.reader import (
    BusTiming,
    PendingCommand,
    Phase,
    ReaderState,
    next_sequence,
)

PDID = bytes.fromhex("bebafe0101afbeaddeaddead")


def reply(reader: ReaderState, code: int, data: bytes = b"") -> codec.Frame:
    """Answer the frame in flight as a plain PD would."""
    assert reader.inflight is not None
    return parse_frame(encode_frame(reader.address | 0x80, reader.inflight.sequence, code, data))


def bring_online(reader: ReaderState, now: float = 0.0) -> list[object]:
    """Walk a plain reader through ID, CAP, LSTAT, ISTAT; return the events."""
    events: list[object] = []
    for code, data in [(0x45, PDID), (0x46, bytes([1, 1, 1])), (0x48, b"\0\0"), (0x49, b"\1")]:
        reader.build_next(now)
        events += reader.on_reply(reply(reader, code, data), 0, now)
    return events


def sent_sequence(reader: ReaderState, now: float) -> tuple[int, int]:
    out = reader.build_next(now)
    frame = parse_frame(out.frame)
    return frame.code, frame.sequence


def test_sequence_numbers() -> None:
    assert [next_sequence(s) for s in (0, 1, 2, 3)] == [1, 2, 3, 1]


def test_bring_up_order_and_sequence_start_at_zero() -> None:
    reader = ReaderState(1, None, BusTiming())
    codes = []
    for code, data in [(0x45, PDID), (0x46, b""), (0x48, b"\0\0"), (0x49, b"\0")]:
        codes.append(sent_sequence(reader, 0.0))
        reader.on_reply(reply(reader, code, data), 0, 0.0)
    assert codes == [(Command.ID, 0), (Command.CAP, 1), (Command.LSTAT, 2), (Command.ISTAT, 3)]
    assert reader.phase is Phase.ONLINE
    assert sent_sequence(reader, 1.0) == (Command.POLL, 1)


def test_online_events_and_first_input_state() -> None:
    reader = ReaderState(1, None, BusTiming())
    events = bring_online(reader)
    assert events == [ReaderOnline(1, False, reader.pd_id), InputChanged(1, (True,))]


def test_retry_resends_the_same_bytes_with_the_same_sequence() -> None:
    reader = ReaderState(1, None, BusTiming())
    bring_online(reader)
    first = reader.build_next(1.0)
    reader.on_timeout(1.2)
    again = reader.build_next(1.2)
    assert again.frame == first.frame
    assert again.attempts == 2
    assert reader.errors["timeout"] == 1


def test_queued_command_goes_before_the_poll_and_expires() -> None:
    reader = ReaderState(1, None, BusTiming(command_expiry=2.0))
    bring_online(reader)
    reader.queue.append(PendingCommand(Command.OUT, bytes([0, 5, 50, 0]), queued_at=1.0))
    assert reader.due_at() == 0.0  # ahead of everything
    assert sent_sequence(reader, 1.1)[0] == Command.OUT
    reader.on_reply(reply(reader, 0x40), 0, 1.1)
    reader.queue.append(PendingCommand(Command.OUT, bytes([0, 5, 50, 0]), queued_at=1.0))
    assert sent_sequence(reader, 3.5)[0] == Command.POLL  # 2.5 s old: dropped
    assert reader.errors["command_expired"] == 1


def test_offline_after_the_offline_time_and_probed_again() -> None:
    timing = BusTiming()
    reader = ReaderState(1, None, timing)
    bring_online(reader, now=0.0)
    assert reader.check_offline(7.9) == []
    events = reader.check_offline(8.1)
    assert events == [ReaderOffline(1, "no valid reply for 8 s")]
    assert reader.phase is Phase.PROBE
    assert sent_sequence(reader, 8.1) == (Command.ID, 0)
    reader.on_timeout(8.3)
    assert reader.next_due == pytest.approx(8.3 + timing.probe_interval)


def test_card_read_event() -> None:
    reader = ReaderState(1, None, BusTiming())
    bring_online(reader)
    reader.build_next(1.0)
    data = bytes([0, 1, 26, 0]) + wiegand.encode(1234567)
    events = reader.on_reply(reply(reader, 0x50, data), 42, 1.0)
    assert events == [CardRead(1, 26, wiegand.encode(1234567), 1234567, True, "h10301")]
    assert isinstance(events[0], CardRead)
    assert events[0].received_at == 42


def test_keyed_reader_never_reaches_online_in_plain_mode() -> None:
    reader = ReaderState(1, bytes(16), BusTiming())
    reader.build_next(0.0)
    reader.on_reply(reply(reader, 0x45, PDID), 0, 0.0)
    reader.build_next(0.0)
    reader.on_reply(reply(reader, 0x46, b""), 0, 0.0)
    assert reader.phase is Phase.CHLNG
    # A PD answering CHLNG with a plain ACK instead of CCRYPT does not get used.
    reader.build_next(0.0)
    events = reader.on_reply(reply(reader, 0x40), 0, 0.0)
    assert [type(e).__name__ for e in events] == ["SecureChannelFailed"]
    assert not reader.in_service
    assert reader.session is None


def test_plain_reply_inside_the_secure_channel_drops_it() -> None:
    reader = ReaderState(1, secure.SCBK_D, BusTiming())
    session = secure.SecureSession(secure.SCBK_D, rnd_a=bytes(8))
    session.established = True
    reader.session = session
    reader.phase = Phase.ONLINE
    reader.announced = True
    reader.build_next(0.0)
    events = reader.on_reply(reply(reader, 0x50, bytes([0, 1, 8, 0, 0xFF])), 0, 0.0)
    assert events == []  # no card from an unauthenticated reply
    assert reader.errors["secure_channel"] == 1
    assert reader.session is None
    assert reader.phase is Phase.PROBE


def _protocol_state(reader: ReaderState) -> tuple[object, ...]:
    return (reader.phase, reader.sequence, reader.inflight, reader.last_heard, reader.next_due,
            reader.announced, dict(reader.errors))


def test_a_plain_ack_recognised_by_its_bytes_does_what_parsing_it_does() -> None:
    parsed, recognised = ReaderState(1, None, BusTiming()), ReaderState(1, None, BusTiming())
    bring_online(parsed)
    bring_online(recognised)
    for turn in range(7):  # the sequence goes round 1, 2, 3, 1, ... more than once
        now = 1.0 + turn / 10
        out = parsed.build_next(now)
        same = recognised.build_next(now)
        assert out.frame == same.frame == encode_frame(1, out.sequence, Command.POLL)
        assert out.plain_ack == encode_frame(0x81, out.sequence, 0x40)
        assert parsed.on_reply(parse_frame(out.plain_ack), 0, now) == []
        recognised.on_plain_ack(now)
        assert _protocol_state(recognised) == _protocol_state(parsed)


def test_cached_poll_frames_follow_an_address_change() -> None:
    reader = ReaderState(1, None, BusTiming())
    bring_online(reader)
    reader.build_next(1.0)
    reader.on_plain_ack(1.0)
    reader.address = 9  # as after a COM reply, once brought up again at the new address
    out = reader.build_next(2.0)
    assert out.frame == encode_frame(9, out.sequence, Command.POLL)
    assert out.plain_ack == encode_frame(0x89, out.sequence, 0x40)


def test_secure_polls_and_commands_expect_no_plain_ack() -> None:
    reader = ReaderState(1, secure.SCBK_D, BusTiming())
    session = secure.SecureSession(secure.SCBK_D, rnd_a=bytes(8))
    session.established = True
    reader.session, reader.phase, reader.announced = session, Phase.ONLINE, True
    out = reader.build_next(0.0)
    assert out.code == Command.POLL
    assert out.plain_ack is None
    assert parse_frame(out.frame).mac is not None
    plain = ReaderState(1, None, BusTiming())
    bring_online(plain)
    plain.queue.append(PendingCommand(Command.OUT, bytes([0, 5, 50, 0]), queued_at=1.0))
    assert plain.build_next(1.0).plain_ack is None


@pytest.mark.parametrize("module", [codec, crc, wiegand, secure, panel])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0
