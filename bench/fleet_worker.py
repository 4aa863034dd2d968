"""One worker process of the fleet benchmark: many real `UplinkSession`s on one `Runner`.

Each simulated gateway has its own in-memory journal; a generator thread makes access events
at the worker's share of the fleet rate (exponential gaps, each event at a gateway drawn at
random) and hands them to the runner's thread, which journals them and kicks the session, as
`gateway run` does after a commit. The platform's acks end an event's pending life exactly as
on a gateway, and the journal notes when: generated → acked is the ack round trip.

The parent talks to a worker through a pipe: see `Worker.command`.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cloud_sync.runner import Runner
from cloud_sync.uplink import UplinkSession, UplinkSettings

KINDS = ("access.granted",) * 8 + ("access.denied",)
REASONS = {"access.granted": "valid_card", "access.denied": "unknown_card"}


def gateway_id(index: int) -> str:
    """The id of simulated gateway `index`: shaped like SPEC 2's `gw-440305-0042`."""
    return f"gw-{440300 + index // 1000:06d}-{index % 1000:04d}"


def event_body(gateway: str, seq: int, generated: float, rng: random.Random) -> bytes:
    """An access event as the gateway's journal writes it (SPEC 6), about 350 bytes."""
    kind = rng.choice(KINDS)
    number = rng.randrange(1 << 26)
    body: dict[str, Any] = {
        "schema": 1,
        "gateway_id": gateway,
        "seq": seq,
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ts": datetime.fromtimestamp(generated, UTC).isoformat(timespec="milliseconds"),
        "type": kind,
        "door": "main",
        "credential": {"kind": "card", "number": number},
        "room": f"{rng.randrange(1, 33)}{rng.choice('ABCDEF')}",
        "reason": REASONS[kind],
    }
    if kind == "access.granted":
        body["tenant_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        body["snapshot"] = {"sha256": hashlib.sha256(body["event_id"].encode()).hexdigest(),
                            "bytes": rng.randrange(35_000, 65_000)}  # fmt: skip
    else:
        body["snapshot"] = None
        body["snapshot_error"] = "no_frame"
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(slots=True)
class Acked:
    """One event's life at the gateway: made (wall clock), covered by an ack (wall clock)."""

    phase: str
    generated: float
    acked: float


class MemoryJournal:
    """The `Journal` protocol over lists; touched only on the runner's thread."""

    def __init__(self, gateway: str, done: list[Acked]) -> None:
        self.gateway = gateway
        self._bodies: list[bytes] = []  # seq n at index n - 1; emptied once acked
        self._made: list[tuple[str, float]] = []
        self._acked = 0
        self._done = done

    def append(self, body: bytes, phase: str, generated: float) -> int:
        """Journal one event; its seq."""
        self._bodies.append(body)
        self._made.append((phase, generated))
        return len(self._bodies)

    @property
    def last_seq(self) -> int:
        """The highest seq journaled (0: none)."""
        return len(self._bodies)

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        start = max(after_seq, self._acked)
        end = min(len(self._bodies), start + limit)
        return [(seq, self._bodies[seq - 1]) for seq in range(start + 1, end + 1)]

    def acknowledge(self, seq: int) -> None:
        seq = min(seq, len(self._bodies))
        now = time.time()
        for n in range(self._acked + 1, seq + 1):
            phase, generated = self._made[n - 1]
            self._done.append(Acked(phase, generated, now))
            self._bodies[n - 1] = b""
        self._acked = max(self._acked, seq)

    def acked_seq(self) -> int:
        return self._acked

    def status(self) -> dict[str, Any]:
        return {"registry_version": 1, "queue_depth": len(self._bodies) - self._acked}


class Worker:
    """Sessions `first`..`first + count - 1` against `host:port`; commands from the parent."""

    def __init__(self, host: str, port: int, first: int, count: int, seed: int,
                 settings: dict[str, Any]) -> None:  # fmt: skip
        self.done: list[Acked] = []
        self.journals = [MemoryJournal(gateway_id(first + n), self.done) for n in range(count)]
        self.sessions = [
            UplinkSession(UplinkSettings(host=host, port=port, gateway_id=j.gateway, **settings), j)
            for j in self.journals
        ]
        self.runner = Runner(name=f"fleet-{first}")
        self.rng = random.Random(seed)
        self.rate = 0.0
        self.phase = ""
        self.generated = 0
        self.added = 0
        self._stop = threading.Event()

    # --------------------------------------------------------------- threads

    def start(self) -> None:
        """Start the runner (no session yet) and the event generator (rate 0 until told)."""
        self.runner.start()
        threading.Thread(target=self._generate, name="events", daemon=True).start()

    def ramp(self, per_second: float, connecting_max: int) -> None:
        """Hand sessions to the runner at `per_second`, never more than `connecting_max`
        waiting for their CONNACK at once (a thread; returns at once)."""

        def add_all() -> None:
            started = time.monotonic()
            waiting: list[UplinkSession] = []
            for n, session in enumerate(self.sessions):
                if per_second > 0:
                    delay = started + n / per_second - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                while len(waiting) >= connecting_max and not self._stop.is_set():
                    time.sleep(0.01)
                    waiting = [s for s in waiting if s.stats.first_connected_at is None]
                self.runner.call_soon(lambda s=session: self.runner.add(s))  # type: ignore[misc]
                waiting.append(session)
                self.added = n + 1

        threading.Thread(target=add_all, name="ramp", daemon=True).start()

    def _generate(self) -> None:
        while not self._stop.is_set():
            rate = self.rate
            if rate <= 0:
                time.sleep(0.05)
                continue
            time.sleep(self.rng.expovariate(rate))
            if self.rate <= 0:
                continue
            index = self.rng.randrange(len(self.sessions))
            generated = time.time()
            self.generated += 1
            self.runner.call_soon(
                lambda i=index, g=generated, p=self.phase: self._journal(i, g, p),  # type: ignore[misc]
                self.sessions[index],
            )

    def _journal(self, index: int, generated: float, phase: str) -> None:
        journal = self.journals[index]
        body = event_body(journal.gateway, journal.last_seq + 1, generated, self.rng)
        journal.append(body, phase, generated)
        self.sessions[index].kick()

    # --------------------------------------------------------------- parent's commands

    def command(self, name: str, args: dict[str, Any]) -> Any:
        """Answer one command from the parent (see `serve`)."""
        if name == "ramp":
            self.ramp(args["per_second"], args["connecting_max"])
            return None
        if name == "rate":
            self.phase = args["phase"]
            self.rate = args["events_per_second"]
            return None
        if name == "progress":
            return self.progress()
        if name == "report":
            return self.report()
        raise ValueError(f"unknown command {name!r}")

    def progress(self) -> dict[str, Any]:
        """Counts for the parent's polling: connected, events made and acked."""
        stats = [s.stats for s in self.sessions]
        return {
            "added": self.added,
            "connected_now": sum(1 for s in self.sessions if s.connected),
            "ever_connected": sum(1 for st in stats if st.first_connected_at is not None),
            "generated": self.generated,
            "journaled": sum(j.last_seq for j in self.journals),
            "acked": sum(j.acked_seq() for j in self.journals),
            "rss_kib": rss_kib(),
        }

    def report(self) -> dict[str, Any]:
        """Everything measured: per-session counters, connect times, each event's ack time."""
        stats = [s.stats for s in self.sessions]
        return {
            "first_connected_at": [st.first_connected_at for st in stats],
            "connects": sum(st.connects for st in stats),
            "connect_failures": sum(st.connect_failures for st in stats),
            "disconnects": sum(st.disconnects for st in stats),
            "published": sum(st.published for st in stats),
            "resent": sum(st.resent for st in stats),
            "refused": sum(st.refused for st in stats),
            "acks": sum(st.acks for st in stats),
            "downlink_refused": sum(st.downlink_refused for st in stats),
            "last_errors": sorted({st.last_error for st in stats if st.last_error})[:10],
            "last_seq": {j.gateway: j.last_seq for j in self.journals if j.last_seq},
            "acked": [(a.phase, a.generated, a.acked) for a in self.done],
            "rss_kib": rss_kib(),
        }

    def stop(self) -> None:
        """Offline status and DISCONNECT for every session, then end the threads."""
        self._stop.set()
        self.runner.stop(timeout=60)


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def serve(pipe: Connection, host: str, port: int, first: int, count: int, seed: int,
          settings: dict[str, Any]) -> None:  # fmt: skip
    """A worker process's main: build the sessions, then answer `(name, args)` until "stop"."""
    base = rss_kib()
    worker = Worker(host, port, first, count, seed, settings)
    worker.start()
    pipe.send({"rss_kib_empty": base, "rss_kib_built": rss_kib()})
    while True:
        name, args = pipe.recv()
        if name == "stop":
            worker.stop()
            pipe.send(None)
            return
        try:
            pipe.send(worker.command(name, args))
        except Exception as exc:  # the parent must hear of it rather than wait forever
            pipe.send(exc)
            raise
