"""Measure the control panel against libosdp PDs on a pty; the figures in docs/osdp.md.

Run: ``.venv/bin/python -m tests.osdp.measure`` (about a minute). The simulated readers run in
a child process, so the CPU time reported is the control panel's alone.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from firmware_bridge.osdp import CardRead, ControlPanel, Event, ReaderOnline, ReaderSpec
from firmware_bridge.osdp.reader import BusTiming
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader

KEY = bytes(range(16))


def _serve(conn: Connection, baud: int, addresses: list[int], secure: bool) -> None:
    """Child process: run the bus and readers; obey "card N A" and "out A" requests."""
    with SimulatedBus(baud=baud) as bus:
        readers = {a: SimulatedReader(bus, a, scbk=KEY if secure else None).start()
                   for a in addresses}
        conn.send(bus.port)
        while (request := conn.recv()) != "stop":
            kind, *args = request
            if kind == "card":
                number, address = args
                conn.send(time.monotonic_ns())
                readers[address].present_card(number)
            elif kind == "out":
                out = readers[args[0]].wait_for_output(5)
                conn.send(out.at_ns if out else None)
        for reader in readers.values():
            reader.stop()


class Bench:
    """A CP in this process, readers in a child."""

    def __init__(self, baud: int, addresses: list[int], secure: bool,
                 timing: BusTiming | None = None) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=_serve, args=(child, baud, addresses, secure))
        self.proc.start()
        port = self.conn.recv()
        self.cards: list[CardRead] = []
        self.written: list[tuple[int, int, int]] = []
        self.online: set[int] = set()
        self.card_seen = threading.Event()
        self.cp = ControlPanel(
            port, baud, [ReaderSpec(a, KEY if secure else None) for a in addresses],
            self.on_event, on_frame_written=lambda a, c, ns: self.written.append((a, c, ns)),
            timing=timing,
        )
        self.cp.start()
        deadline = time.monotonic() + 10
        while self.online != set(addresses) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Let the status events queued at bring-up drain, or the first card waits behind them.
        time.sleep(1.0)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ReaderOnline):
            self.online.add(event.address)
        if isinstance(event, CardRead):
            self.cp.pulse_output(event.address, 0, 5.0)
            self.cards.append(event)
            self.card_seen.set()

    def close(self) -> None:
        self.cp.stop()
        self.conn.send("stop")
        self.proc.join(10)


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return (f"median {statistics.median(values):6.2f} ms  p95 {p95:6.2f} ms  "
            f"max {values[-1]:6.2f} ms  (n={len(values)})")


def cycle_time(baud: int, secure: bool) -> str:
    """POLL write to POLL write with no pause between polls: one full round trip."""
    bench = Bench(baud, [1], secure, BusTiming(poll_interval=0.0))
    bench.written.clear()
    time.sleep(3)
    bench.close()
    polls = [ns for _, code, ns in bench.written if code == 0x60]
    return ms([(b - a) / 1e6 for a, b in itertools.pairwise(polls)])


def door_path(baud: int, secure: bool, count: int = 40) -> tuple[str, str]:
    """Card frame read → OUT frame written (CP), and card presented → OUT at the PD (total)."""
    bench = Bench(baud, [1], secure)
    inside, total = [], []
    for n in range(count):
        bench.card_seen.clear()
        bench.conn.send(("card", n + 1, 1))
        presented = bench.conn.recv()
        bench.card_seen.wait(5)
        bench.conn.send(("out", 1))
        at_pd = bench.conn.recv()
        card = bench.cards[-1]
        out_ns = next(ns for a, c, ns in bench.written if c == 0x68 and ns > card.received_at)
        inside.append((out_ns - card.received_at) / 1e6)
        total.append((at_pd - presented) / 1e6)
        time.sleep(random.uniform(0.1, 0.2))  # present at random points of the poll cycle
    bench.close()
    return ms(inside), ms(total)


def idle_cpu(readers: int, seconds: float = 10.0) -> str:
    """CPU used by the CP process while it polls idle readers."""
    bench = Bench(9600, list(range(1, readers + 1)), secure=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    bench.close()
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return f"{100 * used / seconds:.1f} % of one core"


def main() -> None:
    """Print every figure."""
    out: Callable[[str], None] = print
    out(f"python {sys.version.split()[0]}; libosdp PDs in a child process on a pty")
    for baud in (9600, 115200):
        for secure in (False, True):
            label = f"{baud:>6} baud {'secure' if secure else 'plain '}"
            out(f"{label} POLL cycle        : {cycle_time(baud, secure)}")
            inside, total = door_path(baud, secure)
            out(f"{label} card read → OUT written: {inside}")
            out(f"{label} card → OUT at PD   : {total}")
    for readers in (1, 4):
        out(f"idle CPU, {readers} secure reader(s) at 9600: {idle_cpu(readers)}")


if __name__ == "__main__":
    main()
