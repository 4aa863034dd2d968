"""The two wires between parts that are not the store, both Unix sockets in the runtime folder.

- **Door commands** (stream, `door.sock`): the uplink hands the door part a signed command
  envelope, as it came from the city, and gets the result back. The door part checks the
  signature itself, so nothing but the city's key can open a door through this socket, even
  from a compromised uplink or web process.
- **Capture requests** (datagrams, `camera.sock`): the door part asks the camera part for the
  snapshot of a journaled event. A send never blocks: if the camera part is not there, the
  door is told at once and records why the event has no picture.

Both sides bound what they read: a request is a few hundred bytes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A signed unlock or lockdown envelope is about 400 bytes; registry updates never come here.
MAX_COMMAND_BYTES = 16 * 1024
COMMAND_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 1024


def _bind(path: Path, kind: int) -> socket.socket:
    path.unlink(missing_ok=True)  # a socket file left by a part that died
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # 0600: the gateway's user alone
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    return sock


class CommandServer:
    """The door part's end: one envelope per connection, answered with its result."""

    def __init__(self, path: Path, execute: Callable[[bytes], dict[str, Any]]) -> None:
        self._path = path
        self._execute = execute
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = _bind(self._path, socket.SOCK_STREAM)
        sock.listen(8)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="door-commands", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=COMMAND_TIMEOUT_S + 1)
            self._thread = None
        self._path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while (listening := self._sock) is not None:
            try:
                conn, _ = listening.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                try:
                    self._answer(conn)
                except OSError as exc:  # the client went away: nothing to answer
                    log.warning("door command connection failed: %s", exc)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(COMMAND_TIMEOUT_S)
        envelope = _read_bounded(conn, MAX_COMMAND_BYTES)
        if envelope is None:
            result: dict[str, Any] = {"counter": None, "ok": False, "error": "too_large"}
        else:
            result = self._execute(envelope)
        conn.sendall(json.dumps(result).encode() + b"\n")


def _read_bounded(conn: socket.socket, limit: int) -> bytes | None:
    """Everything the peer sends until it shuts its side; None past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := conn.recv(4096):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def send_door_command(path: Path, envelope: bytes) -> dict[str, Any]:
    """Hand a signed envelope to the door part; its result, or OSError when it cannot be
    reached (the door part is down or restarting)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(COMMAND_TIMEOUT_S + 5)
        sock.connect(str(path))
        sock.sendall(envelope)
        sock.shutdown(socket.SHUT_WR)
        reply = _read_bounded(sock, MAX_COMMAND_BYTES)
    if not reply:
        raise OSError("the door part closed the connection without an answer")
    result = json.loads(reply)
    if not isinstance(result, dict):
        raise OSError("the door part answered something that is not a result")
    return result


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """A snapshot wanted for event `seq`, asked for at `requested` (time.monotonic(), which
    is one clock for every process of the machine)."""

    seq: int
    event_id: str
    ts: str
    requested: float

    def encode(self) -> bytes:
        return json.dumps([self.seq, self.event_id, self.ts, self.requested]).encode()

    @classmethod
    def decode(cls, data: bytes) -> CaptureRequest | None:
        """The request, or None for anything malformed."""
        try:
            seq, event_id, ts, requested = json.loads(data)
        except (ValueError, TypeError):
            return None
        if not (type(seq) is int and isinstance(event_id, str) and isinstance(ts, str)
                and isinstance(requested, float)):  # fmt: skip
            return None
        return cls(seq, event_id, ts, requested)


class CaptureRequester:
    """The door part's end: one datagram per request, never waiting."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)

    def send(self, request: CaptureRequest) -> bool:
        """Whether the camera part got the request (False: not running, or its queue is full)."""
        try:
            self._sock.sendto(request.encode(), self._path)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._sock.close()


class CaptureInbox:
    """The camera part's end: requests as they arrive."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._sock = _bind(path, socket.SOCK_DGRAM)

    def receive(self, timeout: float) -> CaptureRequest | None:
        """The next request, or None after `timeout` seconds (or for a malformed datagram)."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(MAX_REQUEST_BYTES)
        except TimeoutError:
            return None
        request = CaptureRequest.decode(data)
        if request is None:
            log.warning("a malformed capture request was dropped")
        return request

    def close(self) -> None:
        self._sock.close()
        self._path.unlink(missing_ok=True)
