"""The serial line under the bus loop: open and reopen the port, write frames, read in time.

A POSIX pyserial port is driven through its file descriptor: one ``poll()`` with the time
left, then one ``read()`` of everything that has arrived. Through pyserial, every ``timeout``
set costs a ``flock`` (the port is opened exclusive) and a ``tcgetattr``, every ``read`` a
``select`` and a ``read``, ``in_waiting`` an ``ioctl`` and ``write`` a ``select`` after the
``write``: eleven system calls per poll where five do (``poll(0)`` for stale bytes, ``write``,
``tcdrain``, ``poll``, ``read``). Any other port (a pyserial URL such as ``loop://``, an object
passed in) goes through its own ``read``/``write``/``timeout`` as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import Protocol, runtime_checkable

import serial

if sys.platform != "win32":
    import termios

    from serial.serialposix import Serial as PosixSerial


@runtime_checkable
class SerialLike(Protocol):
    """What the bus loop needs from a port: pyserial's Serial or anything shaped like it."""

    timeout: float | None

    @property
    def in_waiting(self) -> int:
        """Return how many received bytes wait to be read."""

    def read(self, size: int = 1) -> bytes:
        """Return up to `size` bytes, blocking at most `timeout` seconds."""

    def write(self, data: bytes, /) -> int | None:
        """Queue bytes for sending."""

    def flush(self) -> None:
        """Wait until queued bytes are sent."""

    def close(self) -> None:
        """Release the port."""


PortError = (serial.SerialException, OSError)
"""What a vanishing USB adapter raises: SerialException from pyserial, OSError (EIO) below it."""


class SerialLink:
    """Own one serial port: open it (from a path, a pyserial URL or an open object) and do I/O.

    A port given as an object belongs to the caller: it is never closed here, only marked
    unusable after an error and used again at the next open().
    """

    def __init__(self, port: str | SerialLike, baud: int) -> None:
        self._spec = port
        self.baud = baud
        self._port: SerialLike | None = None
        self._last_rx_ns = 0
        self._gap_ns = _idle_gap_ns(baud)
        self._direct: tuple[int, select.poll] | None = None
        """A POSIX pyserial port's descriptor and a poll object watching it for input."""

    @property
    def name(self) -> str:
        """Return the port's path or URL, for log messages."""
        return self._spec if isinstance(self._spec, str) else repr(self._spec)

    @property
    def is_open(self) -> bool:
        """Return True when the port can be used."""
        return self._port is not None

    def open(self) -> None:
        """Open the port; raise serial.SerialException or OSError when it is not there."""
        if isinstance(self._spec, str):
            # exclusive: a second gateway process on the same adapter would garble both.
            self._port = serial.serial_for_url(
                self._spec, baudrate=self.baud, timeout=0.1, exclusive=True
            )
        else:
            self._port = self._spec
        fd = _posix_fd(self._port)
        if fd is not None:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            self._direct = (fd, poller)

    def close(self) -> None:
        """Close the port (if we opened it); safe to call on a port that already failed."""
        port, self._port = self._port, None
        self._direct = None
        if port is not None and isinstance(self._spec, str):
            with contextlib.suppress(*PortError):  # the adapter is gone; nothing to release
                port.close()

    def set_baud(self, baud: int) -> None:
        """Switch the line speed (after a COMSET)."""
        self.baud = baud
        self._gap_ns = _idle_gap_ns(baud)
        port = self._require()
        if isinstance(port, serial.SerialBase):
            port.baudrate = baud

    def _require(self) -> SerialLike:
        if self._port is None:
            raise serial.SerialException("port is not open")
        return self._port

    def write(self, frame: bytes) -> int:
        """Send a frame after the line has been quiet two characters; return monotonic_ns sent."""
        # OSDP asks for two character times of idle line before a new message, so a slow
        # PD's transceiver has turned around.
        wait_ns = self._last_rx_ns + self._gap_ns - time.monotonic_ns()
        if wait_ns > 0:
            time.sleep(wait_ns / 1e9)
        direct = self._direct
        if direct is None:
            port = self._require()
            port.write(frame)
            port.flush()  # the reply timeout starts when the frame has left, not when queued
            return time.monotonic_ns()
        fd = direct[0]
        try:
            written = os.write(fd, frame)
        except BlockingIOError:
            written = 0
        if written < len(frame):
            _write_rest(fd, frame, written)
        try:
            termios.tcdrain(fd)  # what pyserial's flush() does: return when the frame has left
        except termios.error as error:
            raise serial.SerialException(f"tcdrain failed: {error}") from None
        return time.monotonic_ns()

    def read(self, timeout: float) -> bytes:
        """Block up to `timeout` s for data; return what has arrived (b"" when nothing did)."""
        direct = self._direct
        if direct is None:
            port = self._require()
            port.timeout = max(0.0, timeout)
            data = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
                self._last_rx_ns = time.monotonic_ns()
            return data
        fd, poller = direct
        # poll() counts whole milliseconds, rounded up: it never returns before the deadline.
        if not poller.poll(timeout * 1000 if timeout > 0 else 0):
            return b""
        data = _read_fd(fd)
        if data:
            self._last_rx_ns = time.monotonic_ns()
        return data

    def drain(self) -> bytes:
        """Return bytes already received without waiting (stale data before a new command)."""
        direct = self._direct
        if direct is None:
            port = self._require()
            waiting = port.in_waiting
            if not waiting:
                return b""
            port.timeout = 0
            return port.read(waiting)
        fd, poller = direct
        data = b""
        while poller.poll(0):
            chunk = _read_fd(fd)
            data += chunk
            if len(chunk) < _READ_SIZE:
                break
        return data


def _read_fd(fd: int) -> bytes:
    """Read what has arrived on a port poll() reported readable."""
    try:
        data = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return b""  # readiness without data (another reader of the port took it)
    if not data:
        # What pyserial raises for an adapter that vanished: ready to read, nothing there.
        raise serial.SerialException(
            "device reports readiness to read but returned no data "
            "(device disconnected or multiple access on port?)"
        )
    return data


def _write_rest(fd: int, frame: bytes, written: int) -> None:
    """Finish a write the driver took only part of, waiting for room as pyserial does."""
    view = memoryview(frame)
    writable = select.poll()
    writable.register(fd, select.POLLOUT)
    while written < len(frame):
        writable.poll()
        with contextlib.suppress(BlockingIOError):
            written += os.write(fd, view[written:])


_READ_SIZE = 4096
"""Bytes asked for per read: more than any frame (MAX_FRAME_LEN is 1440)."""


def _idle_gap_ns(baud: int) -> int:
    """Return two character times at 8N1 (10 bits a character), in ns."""
    return int(2 * 10 / baud * 1e9)


def _posix_fd(port: SerialLike) -> int | None:
    """Return the descriptor of a plain POSIX pyserial port, None for anything else.

    Only the exact class: its descriptor is non-blocking and pyserial's own reads and writes
    are plain ``os`` calls on it, so reading it directly changes nothing but the cost.
    Subclasses (VTIMESerial: blocking descriptor, termios timeouts) keep their own methods.
    """
    if sys.platform == "win32" or type(port) is not PosixSerial:
        return None
    return port.fd
