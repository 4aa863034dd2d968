"""The serial link on a pseudo-terminal: reads, stale bytes, timeouts, a vanished device."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from collections.abc import Iterator

import pytest
import serial

from firmware_bridge.osdp.link import PortError, SerialLike, SerialLink
from firmware_bridge.osdp.panel import _Wakeup


class WrappedSerial:
    """A serial-like object that is not a pyserial port: the link uses its methods."""

    def __init__(self, path: str) -> None:
        self._port = serial.Serial(path, timeout=0.1)

    @property
    def timeout(self) -> float | None:
        return self._port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._port.timeout = value

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting

    def read(self, size: int = 1) -> bytes:
        return self._port.read(size)

    def write(self, data: bytes, /) -> int | None:
        return self._port.write(data)

    def flush(self) -> None:
        self._port.flush()

    def close(self) -> None:
        self._port.close()


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # a test may have closed one already
            os.close(fd)


@pytest.fixture(params=["path", "wrapped"])
def link(request: pytest.FixtureRequest, pty: tuple[int, str]) -> Iterator[SerialLink]:
    """A link opened from the device path (descriptor I/O) or around another object."""
    _, path = pty
    wrapped: SerialLike | None = WrappedSerial(path) if request.param == "wrapped" else None
    opened = SerialLink(wrapped if wrapped is not None else path, 115200)
    opened.open()
    yield opened
    opened.close()
    if wrapped is not None:
        wrapped.close()


def read_until(link: SerialLink, size: int, timeout: float = 5.0) -> bytes:
    """Read through the link until `size` bytes came (a loaded machine may split them)."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < size and time.monotonic() < deadline:
        data += link.read(deadline - time.monotonic())
    return data


def test_write_then_read_what_came_back(link: SerialLink, pty: tuple[int, str]) -> None:
    master, _ = pty
    sent_ns = link.write(b"\x53\x01\x08\x00\x05\x60\xaa\xbb")
    assert sent_ns <= time.monotonic_ns()
    assert os.read(master, 100) == b"\x53\x01\x08\x00\x05\x60\xaa\xbb"
    os.write(master, b"reply bytes")
    time.sleep(0.05)
    assert read_until(link, 11) == b"reply bytes"  # as a rule in one call: all that came


def test_read_waits_the_whole_timeout_and_no_longer_than_needed(
    link: SerialLink, pty: tuple[int, str]
) -> None:
    started = time.monotonic()
    assert link.read(0.05) == b""
    assert time.monotonic() - started >= 0.05  # never gives up before the deadline
    master, _ = pty
    timer = threading.Timer(0.05, os.write, (master, b"late"))
    timer.start()
    started = time.monotonic()
    assert read_until(link, 4, timeout=2.0) == b"late"
    assert time.monotonic() - started < 1.0  # returns when the bytes come, not at the timeout
    timer.join()


def test_drain_returns_stale_bytes_without_waiting(link: SerialLink, pty: tuple[int, str]) -> None:
    started = time.monotonic()
    assert link.drain() == b""
    assert time.monotonic() - started < 0.5
    master, _ = pty
    os.write(master, b"noise")
    stale = b""
    deadline = time.monotonic() + 5.0
    while len(stale) < 5 and time.monotonic() < deadline:  # the pty hands bytes over soon
        stale += link.drain()
        time.sleep(0.01)
    assert stale == b"noise"
    assert link.drain() == b""


def test_large_stale_input_is_drained_whole(link: SerialLink, pty: tuple[int, str]) -> None:
    master, _ = pty
    blob = bytes(range(256)) * 12  # 3072 bytes: fits the pty's buffer, more than one frame
    os.write(master, blob)
    got = b""
    deadline = time.monotonic() + 5.0
    while len(got) < len(blob) and time.monotonic() < deadline:  # a pty hands it over in pieces
        got += link.drain()
        time.sleep(0.01)
    assert got == blob


def test_idle_gap_after_a_reply_before_the_next_frame(pty: tuple[int, str]) -> None:
    master, path = pty
    link = SerialLink(path, 1200)  # two characters at 1200 baud: 16.7 ms
    link.open()
    try:
        os.write(master, b"x")
        time.sleep(0.05)
        before_read = time.monotonic_ns()  # the last byte is read (and timed) after this
        assert link.read(1.0) == b"x"
        sent_ns = link.write(b"next")
        assert sent_ns - before_read >= 2 * 10 / 1200 * 1e9
    finally:
        link.close()


def test_a_vanished_device_raises_a_port_error(pty: tuple[int, str]) -> None:
    master, path = pty
    link = SerialLink(path, 115200)
    link.open()
    try:
        os.close(master)  # the other end is gone: reads fail as on an unplugged adapter
        with pytest.raises(PortError):
            link.read(0.2)
    finally:
        link.close()


def test_wakeup_is_kept_until_waited_for_and_used_once() -> None:
    wake = _Wakeup()
    started = time.monotonic()
    assert wake.wait(0.02) is False
    assert time.monotonic() - started >= 0.02
    wake.set()
    wake.set()  # a second set while one is pending changes nothing
    assert wake.wait(5.0) is True  # at once
    assert wake.wait(0.01) is False
    timer = threading.Timer(0.05, wake.set)
    timer.start()
    started = time.monotonic()
    assert wake.wait(5.0) is True
    assert time.monotonic() - started < 1.0
    timer.join()
