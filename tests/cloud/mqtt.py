"""A small MQTT v5 client for tests: publish and see the broker's reason code, subscribe and wait.

    probe = MqttProbe.connect(broker, identity="gw-test-0001")     # TLS when the broker has it
    probe.subscribe("rental/v1/gw-test-0001/ack")
    rc = probe.publish_wait("rental/v1/gw-test-0001/events", b"{...}")  # 0, or 0x87 if refused
    probe.wait_for(lambda: len(probe.messages) >= 1)
    probe.close()

paho runs its network loop on its own thread (`loop_start`); the test thread only publishes,
subscribes and reads what the callbacks recorded under a lock, which paho supports for one
caller thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .broker import Broker

NOT_AUTHORIZED = 0x87
NO_SUBSCRIBERS = 0x10  # a success code: accepted, but nobody subscribed


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the probe received it."""

    topic: str
    payload: bytes
    retain: bool
    user_properties: dict[str, str]
    response_topic: str | None
    correlation_data: bytes | None


class MqttProbe:
    """A paho v5 client recording what it receives and how each publish was acknowledged."""

    def __init__(self, client_id: str = "", *, clean_start: bool = True,
                 session_expiry: int = 0) -> None:
        self.client_id = client_id or f"probe-{uuid.uuid4().hex[:8]}"
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        self.messages: list[Received] = []
        self.published: dict[int, int] = {}  # mid -> PUBACK reason code
        self.subscribed: dict[int, list[int]] = {}  # mid -> SUBACK reason codes
        self.connects: list[int] = []  # CONNACK reason codes, in order
        self.disconnects: list[int] = []
        self.assigned_client_id: str | None = None
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    @classmethod
    def connect(cls, broker: Broker, *, identity: str | None = None, client_id: str = "",
                host: str | None = None, port: int | None = None, clean_start: bool = True,
                session_expiry: int = 0, wait: bool = True) -> MqttProbe:
        """A probe connected to `broker` (or `host:port`, e.g. a proxy in front of it).

        With a TLS broker `identity` picks the client certificate.
        """
        probe = cls(client_id, clean_start=clean_start, session_expiry=session_expiry)
        if broker.tls:
            files = broker.credentials(identity) if identity else None
            probe.client.tls_set(ca_certs=str(broker.ca_file),
                                 certfile=str(files.cert) if files else None,
                                 keyfile=str(files.key) if files else None)
        elif identity:
            probe.client.username_pw_set(identity)
        probe.start(host or broker.host, port or broker.port, wait=wait)
        return probe

    def start(self, host: str, port: int, *, wait: bool = True) -> None:
        """Connect (raising what the socket or TLS raises) and start the network thread."""
        properties = _properties(PacketTypes.CONNECT)
        if self.session_expiry:
            properties.SessionExpiryInterval = self.session_expiry
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(host, port, keepalive=10, clean_start=self.clean_start,
                            properties=properties)
        self.client.loop_start()
        if wait:
            self.wait_for(lambda: bool(self.connects), what="CONNACK")
            if self.connects[-1] != 0:
                raise ConnectionRefusedError(f"CONNACK reason {self.connects[-1]:#x}")

    # -- actions ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
                user_properties: dict[str, str] | None = None,
                response_topic: str | None = None, correlation_data: bytes | None = None) -> int:
        """Publish and return the mid (see `published` for the PUBACK reason code)."""
        properties = _properties(PacketTypes.PUBLISH)
        for key, value in (user_properties or {}).items():
            properties.UserProperty = (key, value)
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        if correlation_data is not None:
            properties.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        return int(info.mid)

    def publish_wait(self, topic: str, payload: bytes | str, timeout: float = 5.0,
                     **kwargs: Any) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0x87: not authorised)."""
        mid = self.publish(topic, payload, **kwargs)
        self.wait_for(lambda: mid in self.published, timeout, what=f"PUBACK of {topic}")
        return self.published[mid]

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> list[int]:
        """Subscribe and return the SUBACK reason codes."""
        result, mid = self.client.subscribe(topic_filter, qos=qos)
        if mid is None:
            raise ConnectionError(f"subscribe failed: {result}")
        self.wait_for(lambda: mid in self.subscribed, timeout, what=f"SUBACK of {topic_filter}")
        return self.subscribed[mid]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0,
                 what: str = "condition") -> None:
        """Block until `predicate()` holds (checked whenever a callback ran)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.client_id}: no {what} within {timeout} s")
                self._cond.wait(min(left, 0.1))

    def received(self, topic: str) -> list[Received]:
        """Messages received on exactly `topic`."""
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    # -- callbacks (paho's thread) ---------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason: ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            self.connects.append(reason.value)
            if properties is not None and hasattr(properties, "AssignedClientIdentifier"):
                self.assigned_client_id = properties.AssignedClientIdentifier
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            self.disconnects.append(reason.value)
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = message.properties
        user = dict(getattr(props, "UserProperty", []) or [])
        received = Received(message.topic, bytes(message.payload), bool(message.retain), user,
                            getattr(props, "ResponseTopic", None),
                            getattr(props, "CorrelationData", None))
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        with self._cond:
            self.published[mid] = reason.value
            self._cond.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        with self._cond:
            self.subscribed[mid] = [r.value for r in reasons]
            self._cond.notify_all()


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]
