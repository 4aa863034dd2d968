"""What polling costs: CPU of the control panel, polls per second and card pick-up delay.

libosdp's simulated reader answers only from its 20 ms service loop, which hides the cost of a
short poll interval. Here the reader is a fast one written with our own codec: it answers a
frame as soon as it has arrived (plain mode, CRC-16, the command's sequence number echoed,
address | 0x80, the last reply resent when a command is repeated with the same sequence
number), as a real reader does in 1-3 ms. It runs in a child process on a pseudo-terminal, so
the CPU figure is the control panel's alone. A pty has no baud rate: bytes are paced to the
line speed in both directions, as ``SimulatedBus(baud=...)`` does (8N1, 10 bits a byte).
In the ``SECURE_CASES`` (left out with ``--no-secure``) the readers have a key and answer
inside the secure channel, as the gateway's readers do; the reader's side of the channel is
written here from OSDP 2.2 annex D, with its own AES calls, not with the panel's code.

For each case (line speed × readers on the bus × poll interval) a ``ControlPanel`` polls for
``--seconds`` after bring-up, and the bench reports polls per second per reader, the CPU of the
panel's process (``getrusage`` user + system over the measuring window, setup excluded), the
worst gap between two frames to the same reader, and the card pick-up delay: the reader gets
26-bit cards at random times (every 100-200 ms, on a random reader) and reports each one in
the RAW reply to the first POLL that has fully arrived after it; the delay runs from the card's
time to ``on_event`` receiving the ``CardRead``. Card times are drawn in advance, so they fall
at random points of the poll cycle.

    .venv/bin/python -m bench.bus_cpu                 # about 4.5 minutes
    .venv/bin/python -m bench.bus_cpu --seconds 3     # shorter runs
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import random
import resource
import select
import statistics
import threading
import time
import tty
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bench._common import machine, percentiles, save
from firmware_bridge.osdp import (
    BusTiming,
    CardRead,
    ControlPanel,
    Event,
    ReaderOnline,
    ReaderSpec,
)
from firmware_bridge.osdp.codec import (
    REPLY_FLAG,
    SCS_11,
    SCS_12,
    SCS_13,
    SCS_14,
    SCS_16,
    SCS_17,
    SCS_18,
    Frame,
    StreamParser,
    encode_frame,
    encode_header,
    frame_length,
)
from firmware_bridge.osdp.messages import Command, NakReason, Reply
from firmware_bridge.osdp.secure import pad, session_keys, unpad
from firmware_bridge.wiegand import encode

INTERVALS_MS = (0, 5, 10, 20, 50)
READER_COUNTS = (1, 4)
BAUDS = (115200, 9600)
SECURE_CASES = ((115200, 1, 10), (115200, 1, 20), (115200, 4, 10), (115200, 4, 20))
"""(baud, readers, poll interval ms) measured again with every reader in the secure channel."""
SCBK = bytes(range(0x40, 0x50))
"""The key of every reader in the secure cases."""
CARD_GAP_S = (0.1, 0.2)
"""A card every 100-200 ms on the bus, on a random reader."""
CARD_QUIET_END_S = 0.3
"""No card in the last 0.3 s of a window, so every card is picked up before the end."""
SETTLE_S = 0.3
"""After every reader is online, before measuring: bring-up leftovers drain."""

# PDCAP entries: (function code, compliance, count), OSDP 2.2 table 46.
CAPABILITIES = bytes([
    1, 1, 1,     # contact status monitoring: 1 input
    2, 1, 1,     # output control: 1 output
    3, 1, 0,     # card data format: bit array
    4, 1, 1,     # reader LED control: 1 LED
    5, 1, 1,     # reader audible output: on/off
    8, 1, 0,     # check character: CRC-16
    10, 0, 1,    # receive buffer: 256 bytes
    13, 0, 1,    # readers: 1 attached
])
PDID = bytes([0x5A, 0x01, 0x00, 7, 1]) + (0x12345678).to_bytes(4, "little") + bytes([1, 0, 0])


def wire_s(count: int, baud: int) -> float:
    """Return how long `count` bytes take on the line at 8N1."""
    return count * 10 / baud


# --- the fast reader (child process) ----------------------------------------------------------


def _ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # single blocks, by the spec
    return enc.update(block) + enc.finalize()


def _cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def _not(block: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in block)


class PdChannel:
    """The reader's side of one secure channel (OSDP 2.2 annex D, SCBK only)."""

    def __init__(self, scbk: bytes, rnd_a: bytes) -> None:
        self.rnd_a = rnd_a
        self.rnd_b = os.urandom(8)
        self.s_enc, self.s_mac1, self.s_mac2 = session_keys(scbk, rnd_a)
        self.c_mac = self.r_mac = bytes(16)
        self.established = False

    def client_cryptogram(self) -> bytes:
        """Return AES(S-ENC, RND.A ‖ RND.B), sent in CCRYPT."""
        return _ecb(self.s_enc, self.rnd_a + self.rnd_b)

    def initial_rmac(self, server_cryptogram: bytes) -> bytes | None:
        """Check the CP's SCRYPT cryptogram; return RMAC_I and open the channel, or None."""
        if server_cryptogram != _ecb(self.s_enc, self.rnd_b + self.rnd_a):
            return None
        self.r_mac = _ecb(self.s_mac2, _ecb(self.s_mac1, server_cryptogram))
        self.established = True
        return self.r_mac

    def mac(self, message: bytes, iv: bytes) -> bytes:
        """Return the full MAC: AES-CBC under S-MAC1, the last block under S-MAC2."""
        if len(message) % 16:
            message = pad(message)
        if len(message) > 16:
            iv = _cbc(self.s_mac1, iv, message[:-16])[-16:]
        return _cbc(self.s_mac2, iv, message[-16:])


# --- the fast reader (child process) ----------------------------------------------------------


@dataclass
class FastReader:
    """One simulated PD: answers from its state at once; cards queued with their times."""

    address: int
    scbk: bytes | None = None
    """With a key the reader works inside the secure channel; without, it refuses it."""
    cards: list[tuple[int, int]] = field(default_factory=list)
    """(available monotonic_ns, card number), in time order."""
    next_card: int = 0
    last_command: bytes = b""
    last_reply: bytes = b""
    channel: PdChannel | None = None

    def answer(self, frame: Frame, arrived_ns: int) -> bytes:
        """Return the reply to a command that had fully arrived at `arrived_ns`."""
        if frame.sequence != 0 and frame.raw == self.last_command:
            return self.last_reply  # a retry: the reply was lost, send it again
        if frame.sequence == 0:
            self.channel = None  # sequence 0 resets the reader and ends its session
        if self.scbk is not None:
            reply = self._secure_answer(frame, self.scbk, arrived_ns)
        elif frame.security_block is not None:
            reply = self._plain(frame, Reply.NAK, bytes([NakReason.SC_UNSUPPORTED]))
        else:
            reply = self._plain(frame, *self._reply(frame.code, arrived_ns))
        self.last_command, self.last_reply = frame.raw, reply
        return reply

    def _plain(self, frame: Frame, code: int, data: bytes, block: bytes | None = None) -> bytes:
        return encode_frame(self.address | REPLY_FLAG, frame.sequence, code, data,
                            security_block=block)

    def _secure_answer(self, frame: Frame, scbk: bytes, arrived_ns: int) -> bytes:
        block, channel = frame.security_block, self.channel
        refuse = bytes([NakReason.SC_CONDITIONS])
        if block is None:  # ID and CAP come before the channel; nothing plain after it
            if channel is not None and channel.established:
                self.channel = None
                return self._plain(frame, Reply.NAK, refuse)
            return self._plain(frame, *self._reply(frame.code, arrived_ns))
        if block[1] == SCS_11:  # CHLNG: RND.A
            self.channel = channel = PdChannel(scbk, frame.data)
            data = bytes(8) + channel.rnd_b + channel.client_cryptogram()  # cUID, RND.B, crypt.
            return self._plain(frame, Reply.CCRYPT, data, bytes([3, SCS_12, 1]))
        if block[1] == SCS_13 and channel is not None:  # SCRYPT: the CP's cryptogram
            rmac_i = channel.initial_rmac(frame.data)
            if rmac_i is None:
                self.channel = None
                return self._plain(frame, Reply.NAK, refuse)
            return self._plain(frame, Reply.RMAC_I, rmac_i, bytes([3, SCS_14, 1]))
        if channel is None or not channel.established or frame.mac is None:
            return self._plain(frame, Reply.NAK, refuse)
        full = channel.mac(frame.mac_input, channel.r_mac)
        if full[:4] != frame.mac:
            self.channel = None
            return self._plain(frame, Reply.NAK, refuse)
        channel.c_mac = full
        # Command data (SCS_17) is encrypted with IV = NOT(last R-MAC); the bench needs none.
        if block[1] == SCS_17:
            unpad(_cbc(channel.s_enc, _not(channel.r_mac), frame.data, decrypt=True))
        code, data = self._reply(frame.code, arrived_ns)
        if data:  # SCS_18: encrypted with IV = NOT(this command's MAC)
            reply_block = bytes([2, SCS_18])
            payload = _cbc(channel.s_enc, _not(channel.c_mac), pad(data))
        else:
            reply_block, payload = bytes([2, SCS_16]), b""
        body = reply_block + bytes([code]) + payload
        me = self.address | REPLY_FLAG
        head = encode_header(me, frame.sequence, frame_length(len(body), with_mac=True),
                             security=True)
        channel.r_mac = channel.mac(head + body, channel.c_mac)
        return encode_frame(me, frame.sequence, code, payload, security_block=reply_block,
                            mac=channel.r_mac[:4])

    def _reply(self, command: int, arrived_ns: int) -> tuple[int, bytes]:
        match command:
            case Command.POLL:
                if self.next_card < len(self.cards) and self.cards[self.next_card][0] <= arrived_ns:
                    number = self.cards[self.next_card][1]
                    self.next_card += 1
                    # reader 0, format 1 (Wiegand bits), bit count (LE), the bits
                    return Reply.RAW, bytes([0, 1, 26, 0]) + encode(number, 26)
                return Reply.ACK, b""
            case Command.ID:
                return Reply.PDID, PDID
            case Command.CAP:
                return Reply.PDCAP, CAPABILITIES
            case Command.LSTAT:
                return Reply.LSTATR, bytes([0, 0])
            case Command.ISTAT:
                return Reply.ISTATR, bytes([0])
            case Command.OSTAT:
                return Reply.OSTATR, bytes([0])
            case Command.OUT | Command.LED | Command.BUZ:
                return Reply.ACK, b""
        return Reply.NAK, bytes([NakReason.UNKNOWN_COMMAND])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(
    conn: Connection, baud: int, addresses: list[int], seed: int, scbk: bytes | None = None
) -> None:
    """Child process: a bus of fast readers on a pty; cards from "go" until "stop"."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    readers = {address: FastReader(address, scbk) for address in addresses}
    parser = StreamParser()
    rng = random.Random(seed)
    presented: list[tuple[int, int, int]] = []  # (number, address, available ns)
    cpu_at_go = 0.0
    conn.send(os.ttyname(slave))
    try:
        while True:
            ready, _, _ = select.select([master, conn.fileno()], [], [], 0.5)
            if conn.fileno() in ready:
                request = conn.recv()
                if request[0] == "go":
                    cpu_at_go = _cpu_s()
                    presented = _schedule(rng, readers, seconds=request[1])
                elif request[0] == "stop":
                    conn.send((presented, _cpu_s() - cpu_at_go))
                    return
            if master not in ready:
                continue
            data = os.read(master, 4096)
            # The command has arrived when its last byte would have, at this line speed.
            arrived = time.monotonic() + wire_s(len(data), baud)
            for item in parser.feed(data):
                if not isinstance(item, Frame) or item.address not in readers:
                    continue
                _sleep_until(arrived)
                reply = readers[item.address].answer(item, time.monotonic_ns())
                _sleep_until(time.monotonic() + wire_s(len(reply), baud))
                os.write(master, reply)
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _schedule(
    rng: random.Random, readers: dict[int, FastReader], seconds: float
) -> list[tuple[int, int, int]]:
    """Draw every card of the window: its time, its reader and a unique number."""
    start = time.monotonic_ns()
    end = start + int((seconds - CARD_QUIET_END_S) * 1e9)
    at = start
    presented: list[tuple[int, int, int]] = []
    addresses = sorted(readers)
    while True:
        at += int(rng.uniform(*CARD_GAP_S) * 1e9)
        if at >= end:
            break
        number = len(presented) + 1
        address = rng.choice(addresses)
        readers[address].cards.append((at, number))
        presented.append((number, address, at))
    return presented


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


# --- the control panel (this process) ---------------------------------------------------------


class Recorder:
    """What the panel did: frames written per reader, cards received, readers online."""

    def __init__(self) -> None:
        self.written: list[tuple[int, int]] = []  # (address, monotonic_ns)
        self.cards: list[tuple[int, int, bool | None]] = []  # (number, on_event ns, parity)
        self.online: set[int] = set()
        self.all_online = threading.Event()
        self.expected: set[int] = set()

    def on_frame_written(self, address: int, code: int, ns: int) -> None:
        self.written.append((address, ns))

    def on_event(self, event: Event) -> None:
        now = time.monotonic_ns()
        if isinstance(event, CardRead):
            self.cards.append((event.number, now, event.parity_ok))
        elif isinstance(event, ReaderOnline):
            self.online.add(event.address)
            if self.online >= self.expected:
                self.all_online.set()


def run_case(
    baud: int, readers: int, interval_ms: int, seconds: float, seed: int, *, secure: bool = False
) -> dict[str, Any]:
    """Measure one case; return its figures."""
    addresses = list(range(1, readers + 1))
    scbk = SCBK if secure else None
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    child = context.Process(target=serve, args=(child_conn, baud, addresses, seed, scbk),
                            daemon=True)
    child.start()
    port = conn.recv()
    recorder = Recorder()
    recorder.expected = set(addresses)
    cp = ControlPanel(port, baud, [ReaderSpec(a, scbk) for a in addresses], recorder.on_event,
                      on_frame_written=recorder.on_frame_written,
                      timing=BusTiming(poll_interval=interval_ms / 1000))
    cp.start()
    try:
        if not recorder.all_online.wait(10):
            raise RuntimeError(f"readers not online: {sorted(recorder.online)} of {addresses}")
        if secure and not all(cp.status(a).secure for a in addresses):
            raise RuntimeError("readers online without the secure channel")
        time.sleep(SETTLE_S)
        errors_before = {a: dict(cp.status(a).errors) for a in addresses}
        cpu_before = _cpu_s()
        t0 = time.monotonic_ns()
        conn.send(("go", seconds))
        time.sleep(seconds)
        cpu_used = _cpu_s() - cpu_before
        t1 = time.monotonic_ns()
        written = [w for w in recorder.written if t0 <= w[1] <= t1]
        cards = list(recorder.cards)
        errors = {a: _diff(cp.status(a).errors, errors_before[a]) for a in addresses}
        cp.stop()  # before the pty goes away with the child
        conn.send(("stop",))
        presented, reader_cpu = conn.recv()
    finally:
        cp.stop()
        child.join(5)
        if child.is_alive():
            child.kill()
    elapsed = (t1 - t0) / 1e9
    per_reader: dict[int, list[int]] = {a: [] for a in addresses}
    for address, ns in written:
        per_reader[address].append(ns)
    rates = [len(times) / elapsed for times in per_reader.values()]
    gaps = [(b - a) / 1e6 for times in per_reader.values() for a, b in itertools.pairwise(times)]
    seen = {number: (ns, parity) for number, ns, parity in cards}
    pickup = [(seen[number][0] - at) / 1e6 for number, _, at in presented if number in seen]
    bad_parity = sum(1 for number, _, _ in presented if number in seen and not seen[number][1])
    total_polls = len(written)
    return {
        "baud": baud,
        "channel": "secure" if secure else "plain",
        "readers": readers,
        "poll_interval_ms": interval_ms,
        "seconds": round(elapsed, 2),
        "polls_per_s_per_reader": round(statistics.fmean(rates), 1),
        "polls_per_s_slowest_reader": round(min(rates), 1),
        "cpu_percent_one_core": round(100 * cpu_used / elapsed, 1),
        "cpu_us_per_poll": round(1e6 * cpu_used / total_polls, 1) if total_polls else None,
        "worst_poll_gap_ms": round(max(gaps), 2) if gaps else None,
        "poll_gap_ms": percentiles(gaps),
        "card_pickup_ms": percentiles(pickup),
        "cards_presented": len(presented),
        "cards_missed": len(presented) - len(pickup),
        "cards_bad_parity": bad_parity,
        "reader_process_cpu_percent": round(100 * reader_cpu / elapsed, 1),
        "panel_errors": {a: e for a, e in errors.items() if e},
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def table(cases: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| baud | channel | readers | interval ms | polls/s/reader | CPU % of a core "
        "| µs CPU/poll | worst poll gap ms | card pick-up p50 / p95 / p99 / max ms (n) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        p = c["card_pickup_ms"]
        card = (f"{p['p50']} / {p['p95']} / {p['p99']} / {p['max']} ({p['n']})" if p else "-")
        lines.append(
            f"| {c['baud']} | {c.get('channel', 'plain')} | {c['readers']} "
            f"| {c['poll_interval_ms']} "
            f"| {c['polls_per_s_per_reader']} | {c['cpu_percent_one_core']} "
            f"| {c['cpu_us_per_poll']} | {c['worst_poll_gap_ms']} | {card} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measuring window per case (default 10)")
    parser.add_argument("--baud", type=int, nargs="+", default=list(BAUDS))
    parser.add_argument("--readers", type=int, nargs="+", default=list(READER_COUNTS))
    parser.add_argument("--interval-ms", type=int, nargs="+", default=list(INTERVALS_MS))
    parser.add_argument("--no-secure", action="store_true",
                        help="leave out the secure-channel cases (SECURE_CASES)")
    args = parser.parse_args()
    if args.seconds <= CARD_QUIET_END_S + 0.5:
        parser.error(f"--seconds must be above {CARD_QUIET_END_S + 0.5}")
    about = machine()
    started = time.monotonic()
    plan = [(baud, readers, interval_ms, False) for baud in args.baud
            for readers in args.readers for interval_ms in args.interval_ms]
    if not args.no_secure:
        plan += [(baud, readers, interval_ms, True) for baud, readers, interval_ms in SECURE_CASES]
    cases = []
    for seed, (baud, readers, interval_ms, secure) in enumerate(plan, start=1):
        case = run_case(baud, readers, interval_ms, args.seconds, seed, secure=secure)
        cases.append(case)
        print(f"{baud:>6} baud, {case['channel']:>6}, {readers} reader(s), {interval_ms:>2} ms: "
              f"{case['polls_per_s_per_reader']:>6} polls/s/reader, "
              f"CPU {case['cpu_percent_one_core']:>5} %, "
              f"worst gap {case['worst_poll_gap_ms']} ms, "
              f"pick-up p95 {case['card_pickup_ms'].get('p95')} ms", flush=True)
    print(table(cases))
    save("bus_cpu", {
        "what": "ControlPanel against fast simulated readers (own codec, answer as soon as a "
                "frame has arrived) in a child process on a pty, paced to the baud rate; plain "
                "mode, and the secure channel (AES-128, MAC on every message) where channel is "
                "secure. CPU is the panel process's user + system time over the window (setup "
                "excluded), in % of one core. Poll gap: between two frames written to the same "
                "reader. Card pick-up: card available at the reader → on_event gets CardRead; "
                "cards every 100-200 ms on a random reader, during the same window.",
        "machine": about,
        "seconds_per_case": args.seconds,
        "total_seconds": round(time.monotonic() - started, 1),
        "cases": cases,
    })


if __name__ == "__main__":
    main()
