"""The serial line under the bus loop: open and reopen the port, write frames, read in time."""

from __future__ import annotations

import contextlib
import time
from typing import Protocol, runtime_checkable

import serial


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

    def close(self) -> None:
        """Close the port (if we opened it); safe to call on a port that already failed."""
        port, self._port = self._port, None
        if port is not None and isinstance(self._spec, str):
            with contextlib.suppress(*PortError):  # the adapter is gone; nothing to release
                port.close()

    def set_baud(self, baud: int) -> None:
        """Switch the line speed (after a COMSET)."""
        self.baud = baud
        port = self._require()
        if isinstance(port, serial.SerialBase):
            port.baudrate = baud

    def _require(self) -> SerialLike:
        if self._port is None:
            raise serial.SerialException("port is not open")
        return self._port

    def write(self, frame: bytes) -> int:
        """Send a frame after the line has been quiet two characters; return monotonic_ns sent."""
        port = self._require()
        # OSDP asks for two character times of idle line before a new message, so a slow
        # PD's transceiver has turned around. 10 bits per character at 8N1.
        gap_ns = int(2 * 10 / self.baud * 1e9)
        wait_ns = self._last_rx_ns + gap_ns - time.monotonic_ns()
        if wait_ns > 0:
            time.sleep(wait_ns / 1e9)
        port.write(frame)
        port.flush()  # the reply timeout starts when the frame has left, not when it was queued
        return time.monotonic_ns()

    def read(self, timeout: float) -> bytes:
        """Block up to `timeout` s for the first byte, then return it with whatever else waits."""
        port = self._require()
        port.timeout = max(0.0, timeout)
        data = port.read(1)
        if data:
            waiting = port.in_waiting
            if waiting:
                data += port.read(waiting)
            self._last_rx_ns = time.monotonic_ns()
        return data

    def drain(self) -> bytes:
        """Return bytes already received without waiting (stale data before a new command)."""
        port = self._require()
        waiting = port.in_waiting
        if not waiting:
            return b""
        port.timeout = 0
        return port.read(waiting)
