"""Fixtures for the OSDP tests: a simulated bus, an event recorder, quick timings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from firmware_bridge.osdp import BusTiming, CardRead, ControlPanel, Event, ReaderSpec
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader

E = TypeVar("E")

#: Shorter offline time so that tests of going offline don't each wait 8 s; the real 8 s is
#: covered once in test_recovery.py.
QUICK = BusTiming(offline_after=1.5, probe_interval=0.2, sc_retry_interval=0.5)


class EventLog:
    """Collects events from the bus thread; tests wait for the ones they expect."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self.handlers: list[Callable[[Event], None]] = []

    def __call__(self, event: Event) -> None:
        for handler in self.handlers:
            handler(event)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: type[E]) -> list[E]:
        """Return the events of one type so far."""
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait(self, kind: type[E], timeout: float = 10.0, **match: Any) -> E:
        """Return the first event of `kind` whose fields equal `match`; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if isinstance(event, kind) and all(
                        getattr(event, k) == v for k, v in match.items()
                    ):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no {kind.__name__} {match} within {timeout} s: {self.events}")
                self._cond.wait(remaining)

    def clear(self) -> None:
        """Forget what has been seen."""
        with self._cond:
            self.events.clear()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def bus() -> Iterator[SimulatedBus]:
    with SimulatedBus() as simulated:
        yield simulated


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
def make_cp(bus: SimulatedBus, log: EventLog) -> Iterator[Callable[..., ControlPanel]]:
    """Build and start a ControlPanel on the simulated bus; stopped after the test."""
    panels: list[ControlPanel] = []

    def make(*specs: ReaderSpec, **kwargs: Any) -> ControlPanel:
        kwargs.setdefault("timing", QUICK)
        cp = ControlPanel(bus.port, readers=specs, on_event=log, **kwargs)
        panels.append(cp)
        cp.start()
        return cp

    yield make
    for cp in panels:
        cp.stop()


@pytest.fixture
def make_reader(bus: SimulatedBus) -> Iterator[Callable[..., SimulatedReader]]:
    """Build and start a simulated reader on the bus; stopped after the test."""
    readers: list[SimulatedReader] = []

    def make(address: int, **kwargs: Any) -> SimulatedReader:
        reader = SimulatedReader(bus, address, **kwargs).start()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.stop()


def open_door_on_card(cp: ControlPanel, seconds: float = 5.0) -> Callable[[Event], None]:
    """Return an event handler that pulses output 0 of the reader a card was read at."""

    def handler(event: Event) -> None:
        if isinstance(event, CardRead):
            cp.pulse_output(event.address, output=0, seconds=seconds)

    return handler
