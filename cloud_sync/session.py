"""The MQTT session engine: one broker connection kept up, driven from one thread.

Both ends of the uplink stand on it: the gateway's `UplinkSession` (uplink.py) and the city
platform's consumer. The engine owns the paho client and everything about keeping it
connected; a subclass says what the connection is for through the hooks at the end.

- **One thread.** paho's client is not thread-safe. A session is driven only by the thread of
  the `Runner` that drives it (runner.py), through paho's external-loop calls `loop_read`,
  `loop_write` and `loop_misc`; other threads reach it with `Runner.call_soon`.
- **A fresh client per connection.** paho keeps its session and outgoing queue in memory; a
  reused client would replay that queue after a reconnect, behind whatever the subclass sends
  again itself. A callback from an earlier client is ignored.
- **TLS** with a client certificate (`TlsFiles`); the certificate's name is the identity.
- **Full-jitter back-off** between attempts (backoff.py), reset by an accepted CONNACK; a
  connection without CONNACK within `connect_timeout` is dropped and retried.
- **Subscribed again on every connect**: a broker restored from an old save, or killed before
  saving, has forgotten the session's subscriptions whatever CONNACK says.
- **Drop**: the socket is closed, the client forgotten, the subclass told; the next attempt
  comes after the back-off. **Close**: the subclass's last words, DISCONNECT, flushed.

    class Echo(Session[LinkStats]):
        def _subscriptions(self) -> list[tuple[str, int]]:
            return [("echo/in", 1)]

        def _on_received(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
            client.publish("echo/out", msg.payload, qos=1)

    runner = Runner()
    runner.add(Echo(Link("127.0.0.1", 1883, "echo"), LinkStats()))
    runner.start()
"""

from __future__ import annotations

import logging
import select
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .backoff import Backoff
from .transport import TlsFiles, no_delay, tls_pending

__all__ = ["Link", "LinkStats", "Session", "properties"]

log = logging.getLogger(__name__)

# Packets read in one go before the runner's other sessions get their turn.
_READ_BURST = 1000


@dataclass(frozen=True, slots=True)
class Link:
    """How to reach the broker, and what to ask of it in CONNECT."""

    host: str
    port: int
    client_id: str
    tls: TlsFiles | None = None
    # The MQTT username on a plain connection (under TLS the certificate names the client).
    username: str | None = None
    keepalive: int = 30
    connect_timeout: float = 10.0
    clean_start: bool = False
    session_expiry: int | None = None  # seconds; None: the session ends with the connection
    receive_maximum: int | None = None  # QoS 1 messages the broker may have in flight to us
    max_packet_bytes: int | None = None  # the broker drops a larger message for us
    manual_ack: bool = False  # PUBACK only when the subclass says so (`Session.puback`)
    backoff_base: float = 1.0
    backoff_cap: float = 120.0


@dataclass(slots=True)
class LinkStats:
    """The connection's counters; the subclasses' stats add their own."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    connected_since: float | None = None
    first_connected_at: float | None = None
    last_error: str = ""


StatsT = TypeVar("StatsT", bound=LinkStats)


class Session(Generic[StatsT]):
    """One MQTT connection kept up; every method runs on its runner's thread."""

    def __init__(self, link: Link, stats: StatsT,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        """Describe the session; nothing connects until the runner calls `service()`."""
        self.link = link
        self.stats = stats
        self._clock = clock
        self._backoff = Backoff(base=link.backoff_base, cap=link.backoff_cap)
        self._client: mqtt.Client | None = None  # the current connection's client
        self._poll: select.poll | None = None  # over its socket: more bytes waiting?
        self._started = 0.0  # when its CONNECT went out (clock)
        self._connected = False  # its CONNACK accepted
        self._subscribe_mid: int | None = None
        self._subscribed = False  # the SUBACK of this connection's SUBSCRIBE came
        self._next_attempt = 0.0
        self._closing = False
        # Set by the runner that drives this session.
        self.on_socket_change: Callable[[Session[Any]], None] = lambda _s: None
        self.call_soon: Callable[[Callable[[], None]], None] = lambda fn: fn()

    # ------------------------------------------------------------------ runner interface

    def socket(self) -> Any:
        """The connection's socket for the runner's selector, or None."""
        return self._client.socket() if self._client is not None else None

    def want_write(self) -> bool:
        """Whether paho has bytes waiting for the socket."""
        return self._client is not None and self._client.want_write()

    @property
    def connected(self) -> bool:
        """A CONNACK accepted this connection and it has not dropped since."""
        return self._client is not None and self._connected

    @property
    def subscribed(self) -> bool:
        """Connected, and the broker answered this connection's SUBSCRIBE."""
        return self.connected and self._subscribed

    def on_readable(self) -> bool:
        """The socket has bytes: let paho read them (callbacks run here).

        Returns True when it stopped with bytes still waiting, to be called again soon.
        """
        # paho reads about one packet per call. Keep reading while the socket has more, so a
        # burst does not cost a trip through the runner per message; and while TLS holds
        # bytes already decrypted, which the selector cannot see: an ack could sit there
        # until the next keepalive.
        for _ in range(_READ_BURST):
            client, poll = self._client, self._poll
            if client is None or poll is None:
                return False
            self._check(client, client.loop_read(), "read")
            if self._client is not client:
                return False
            if not tls_pending(client.socket()) and not poll.poll(0):
                return False
        return True

    def on_writable(self) -> None:
        """The socket can take bytes."""
        client = self._client
        if client is not None:
            self._check(client, client.loop_write(), "write")

    def service(self) -> float:
        """Connect when due, keep alive, do the subclass's work; seconds until due again."""
        now = self._clock()
        if self._closing:
            return 1.0
        client = self._client
        if client is None:
            if now >= self._next_attempt:
                self._connect(now)
            return max(0.05, self._next_attempt - now) if self._client is None else 0.2
        if not self._connected:
            if now - self._started > self.link.connect_timeout:
                self._drop(f"no CONNACK within {self.link.connect_timeout:g} s")
            return 0.2
        self._check(client, client.loop_misc(), "keepalive")
        if self._client is not client:
            return 0.05
        return self._work(client, now)

    def puback(self, client: mqtt.Client, mid: int, qos: int) -> bool:
        """PUBACK a message received on `client` (manual_ack); False if that connection has
        dropped (or QoS 0 wants no PUBACK).

        A PUBACK owed on a connection that has dropped is not sent on the next one: its
        message id may belong to another message there. The broker sends the message again.
        """
        if client is not self._client or qos == 0:
            return False
        client.ack(mid, qos)
        return True

    def close(self) -> None:
        """Say the last words, DISCONNECT, and connect no more."""
        self._closing = True
        client = self._client
        if client is None:
            return
        if self._connected:
            self._before_close(client)
            client.disconnect()
            deadline = time.monotonic() + 2.0
            # Flush the last words and the DISCONNECT with a blocking write loop; paho closes
            # the socket once the DISCONNECT is out (and `_on_disconnect` drops the client).
            while client.want_write() and time.monotonic() < deadline:
                if client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    break
                time.sleep(0.01)
        self._drop("closed")

    # ---------------------------------------------------------------- connection

    def _connect(self, now: float) -> None:
        link = self.link
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=link.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=link.manual_ack,
            reconnect_on_failure=False,
        )
        client.connect_timeout = link.connect_timeout
        if link.tls is not None:
            client.tls_set_context(link.tls.context())
        elif link.username is not None:
            client.username_pw_set(link.username)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._prepare(client)
        props = properties(PacketTypes.CONNECT)
        if link.session_expiry is not None:
            props.SessionExpiryInterval = link.session_expiry
        if link.receive_maximum is not None:
            props.ReceiveMaximum = link.receive_maximum
        if link.max_packet_bytes is not None:
            props.MaximumPacketSize = link.max_packet_bytes
        self._client, self._started, self._connected = client, now, False
        self._subscribed, self._subscribe_mid = False, None
        try:
            client.connect(link.host, link.port, keepalive=link.keepalive,
                           clean_start=link.clean_start, properties=props)  # fmt: skip
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.stats.connect_failures += 1
            self._client = None
            self._retry_later(f"connect to {link.host}:{link.port} failed: {exc}")
            return
        sock = client.socket()
        assert sock is not None  # connect() returned: the TCP connection stands
        no_delay(sock)
        # poll(), not select(): a fleet benchmark process has descriptors past FD_SETSIZE.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self.on_socket_change(self)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
        _props: Properties | None,
    ) -> None:  # fmt: skip
        if client is not self._client:
            return
        if reason.is_failure:
            self.stats.connect_failures += 1
            self._drop(f"broker refused the connection: {reason}")
            return
        self._connected = True
        now = self._clock()
        stats = self.stats
        stats.connects += 1
        stats.connected_since = now
        if stats.first_connected_at is None:
            stats.first_connected_at = now
        self._backoff.reset()
        subscriptions = self._subscriptions()
        if subscriptions:
            self._subscribe_mid = client.subscribe(subscriptions)[1]
        else:
            self._subscribed = True
        self._on_connected(client, now)

    def _on_subscribe(
        self, client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:  # fmt: skip
        if client is not self._client or mid != self._subscribe_mid:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            # Not fatal (another subscription may still work), but nothing to wait for either.
            self.stats.last_error = f"subscriptions refused: {refused}"
            log.error("%s: broker refused subscriptions: %s", self.link.client_id, refused)
        self._subscribed = True

    def _on_disconnect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
        _props: Properties | None,
    ) -> None:  # fmt: skip
        if client is self._client:
            self._drop(f"disconnected: {reason}")

    def _on_publish(
        self, client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
        _props: Properties | None,
    ) -> None:  # fmt: skip
        if client is self._client:
            self._on_published(mid, reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if client is self._client:
            self._on_received(client, msg)

    def _drop(self, why: str) -> None:
        """Forget the connection; unless closing, try again after the back-off."""
        client = self._client
        if client is None:
            return
        if self._connected:
            self.stats.disconnects += 1
        self._client, self._poll, self._connected, self._subscribed = None, None, False, False
        client.on_disconnect = None
        try:
            sock = client.socket()
            if sock is not None:
                sock.close()
        except OSError:
            pass
        self._on_dropped()
        self.on_socket_change(self)
        if not self._closing:
            self._retry_later(why)

    def _retry_later(self, why: str) -> None:
        delay = self._backoff.next_delay()
        self._next_attempt = self._clock() + delay
        self.stats.last_error = why
        log.warning("%s: %s; next attempt in %.1f s", self.link.client_id, why, delay)

    def _check(self, client: mqtt.Client, rc: MQTTErrorCode, what: str) -> None:
        if rc != mqtt.MQTT_ERR_SUCCESS and client is self._client:
            self._drop(f"{what}: {mqtt.error_string(rc)}")

    # ---------------------------------------------------------------- the subclass's part

    def _prepare(self, client: mqtt.Client) -> None:
        """A new client, before its CONNECT: set a last will, limits."""

    def _subscriptions(self) -> list[tuple[str, int]]:
        """(topic filter, QoS) to subscribe to on every connect."""
        return []

    def _on_connected(self, client: mqtt.Client, now: float) -> None:
        """The broker accepted the connection; the subscriptions are on their way."""

    def _on_received(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        """A message came on this connection. Nothing in it may raise: that would end the
        runner's thread, and with it every session it drives."""

    def _on_published(self, mid: int, reason: ReasonCode) -> None:
        """The broker answered a QoS 1 publish of this connection (PUBACK)."""

    def _on_dropped(self) -> None:
        """The connection is gone; what was in flight on it will not be answered."""

    def _work(self, client: mqtt.Client, now: float) -> float:
        """Connected: publish what waits; seconds until there is work again."""
        return 1.0

    def _before_close(self, client: mqtt.Client) -> None:
        """Closing a connected session: publish the last words before DISCONNECT."""


def properties(packet_type: int) -> Properties:
    """Empty MQTT v5 properties for a packet (typed: paho's constructor is not)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]
