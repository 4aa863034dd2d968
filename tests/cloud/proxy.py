"""A TCP proxy between an MQTT client and the broker that breaks the network on request.

    with FaultProxy(broker.host, broker.port) as proxy:
        client.connect(proxy.host, proxy.port)   # the client talks to the proxy
        proxy.cut()          # every open connection reset, both ways (RST): a cable pulled
        proxy.partition()    # connections stay open but nothing flows; new ones hang
        proxy.heal()         # traffic flows again, held bytes included
        proxy.accepted, proxy.open, proxy.cuts

A partition holds bytes rather than dropping them, as TCP does under a real partition: what was
sent arrives after `heal()` unless a keepalive gave up first and someone closed the connection.
One thread runs every connection through a selector; the control calls run on that thread, so
`cut()` has closed every socket by the time it returns.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 65536
# Bytes held for a side that does not read before the proxy stops reading from the other.
HIGH_WATER = 1 << 20


@dataclass(eq=False)
class _Pair:
    """One client connection and its upstream connection (None while a partition holds it)."""

    client: socket.socket
    upstream: socket.socket | None = None
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    eof: set[str] = field(default_factory=set)  # sides that closed their end

    def socks(self) -> list[tuple[str, socket.socket]]:
        found = [("client", self.client)]
        if self.upstream is not None:
            found.append(("upstream", self.upstream))
        return found


class FaultProxy:
    """A loopback TCP proxy to `target_host:target_port`; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0  # connections accepted since start
        self.cuts = 0  # connections reset by cut()
        self._partitioned = False
        self._pairs: list[_Pair] = []
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], threading.Event]] = (
            queue.SimpleQueue())
        self._selector: selectors.DefaultSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._registered: dict[socket.socket, int] = {}

    # -- control ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen on a free loopback port and start forwarding."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def cut(self) -> int:
        """Reset every open connection both ways; returns how many were cut."""
        def reset_all() -> int:
            count = len(self._pairs)
            for pair in list(self._pairs):
                self._drop(pair, reset=True)
            self.cuts += count
            return count
        result = self._call(reset_all)
        assert isinstance(result, int)
        return result

    def partition(self) -> None:
        """Stop every byte both ways; connections stay open, new ones are accepted and held."""
        self._call(lambda: setattr(self, "_partitioned", True))

    def heal(self) -> None:
        """Let traffic flow again; connections held by the partition go upstream now."""
        def resume() -> None:
            self._partitioned = False
            for pair in list(self._pairs):
                if pair.upstream is None:
                    self._connect_upstream(pair)
        self._call(resume)

    @property
    def partitioned(self) -> bool:
        return self._partitioned

    @property
    def open(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._pairs)

    def close(self) -> None:
        """Close every connection and the listener; stop the thread."""
        if self._thread is None:
            return
        self._closing = True
        self._wake()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the loop --------------------------------------------------------------------------

    def _call(self, function: Callable[[], object]) -> object:
        if self._thread is None:
            raise RuntimeError("proxy not started")
        done = threading.Event()
        box: list[object] = []
        self._calls.put((lambda: box.append(function()), done))
        self._wake()
        if not done.wait(timeout=10):
            raise TimeoutError("proxy thread did not answer")
        return box[0] if box else None

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(BlockingIOError):  # full: the loop is awake already
                self._wake_w.send(b"x")

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while not self._closing:
                self._update_interest()
                for key, events in selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_calls()
                    else:
                        pair, side = key.data
                        if pair in self._pairs:
                            self._service(pair, side, events)
                self._drain_calls()
        finally:
            for pair in list(self._pairs):
                self._drop(pair, reset=True)
            selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._listener = self._wake_r = self._wake_w = None

    def _drain_calls(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                function, done = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                function()
            finally:
                done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            pair = _Pair(client)
            self._pairs.append(pair)
            if not self._partitioned:
                self._connect_upstream(pair)

    def _connect_upstream(self, pair: _Pair) -> None:
        try:
            # The broker is on loopback: a refused or completed connect is immediate.
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            self._drop(pair, reset=True)  # as the client would see a broker that is down
            return
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair.upstream = upstream

    def _update_interest(self) -> None:
        """Register each socket for what it may do now (nothing at all in a partition)."""
        selector = self._selector
        assert selector is not None
        wanted: dict[socket.socket, tuple[int, object]] = {}
        if not self._partitioned:
            for pair in self._pairs:
                if pair.upstream is None:
                    continue
                for side, sock in pair.socks():
                    outgoing = pair.to_upstream if side == "client" else pair.to_client
                    incoming = pair.to_client if side == "client" else pair.to_upstream
                    events = 0
                    if side not in pair.eof and len(outgoing) < HIGH_WATER:
                        events |= selectors.EVENT_READ
                    if incoming:
                        events |= selectors.EVENT_WRITE
                    if events:
                        wanted[sock] = (events, (pair, side))
        for sock in list(self._registered):
            if sock not in wanted:
                selector.unregister(sock)
                del self._registered[sock]
        for sock, (events, data) in wanted.items():
            if sock not in self._registered:
                selector.register(sock, events, data)
            elif self._registered[sock] != events:
                selector.modify(sock, events, data)
            self._registered[sock] = events

    def _service(self, pair: _Pair, side: str, events: int) -> None:
        sock = pair.client if side == "client" else pair.upstream
        assert sock is not None
        outgoing = pair.to_upstream if side == "client" else pair.to_client
        incoming = pair.to_client if side == "client" else pair.to_upstream
        try:
            if events & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if data:
                    outgoing += data
                else:
                    pair.eof.add(side)
            if events & selectors.EVENT_WRITE and incoming:
                sent = sock.send(incoming)
                del incoming[:sent]
        except BlockingIOError:
            return
        except OSError:
            self._drop(pair, reset=True)
            return
        # A side that closed and whose bytes were all passed on ends the connection: MQTT
        # does not use half-closed sockets.
        if any((s == "client" and not pair.to_upstream) or (s == "upstream" and not pair.to_client)
               for s in pair.eof):
            self._drop(pair, reset=False)

    def _drop(self, pair: _Pair, *, reset: bool) -> None:
        if pair in self._pairs:
            self._pairs.remove(pair)
        for _, sock in pair.socks():
            if sock in self._registered:
                assert self._selector is not None
                self._selector.unregister(sock)
                del self._registered[sock]
            if reset:
                # Linger on with a zero timeout: close() sends RST instead of FIN.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
