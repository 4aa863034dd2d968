"""The platform's MQTT session: the engine of `cloud_sync.session`, subscribed as a consumer.

The engine connects, backs off, subscribes again and reconnects; this says what to subscribe
to and hands each piece of traffic to its role: messages to ingest, PUBACKs of acks and
commands to theirs, and each turn the acks and commands that wait go out.
"""

from __future__ import annotations

import random
import time
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.runner import Runner
from cloud_sync.session import Link, LinkStats, Session
from cloud_sync.topics import fleet_filter

from .acks import Acks
from .commands import Commands
from .ingest import Ingest
from .settings import PlatformSettings, PlatformStats


class PlatformSession(Session[PlatformStats]):
    """One platform instance's connection (runner's thread)."""

    def __init__(self, settings: PlatformSettings, stats: PlatformStats, ingest: Ingest,
                 acks: Acks, commands: Commands) -> None:  # fmt: skip
        super().__init__(platform_link(settings), stats)
        self.settings = settings
        self._ingest = ingest
        self._acks = acks
        self._commands = commands

    def _subscriptions(self) -> list[tuple[str, int]]:
        s = self.settings
        share = f"$share/{s.group}/"
        if not s.consume:
            return [(fleet_filter(s.prefix, "cmd/result"), 1)]
        return [
            (share + fleet_filter(s.prefix, "events"), 1),
            (share + fleet_filter(s.prefix, "snapshots/+"), 1),
            (share + fleet_filter(s.prefix, "cmd/result"), 1),
            # Not shared: MQTT 5 sends no retained messages to shared subscriptions, and the
            # retained status is the one a fresh database needs. Low rate, so every instance
            # storing every status costs nothing.
            (fleet_filter(s.prefix, "status"), 1),
            # Retained as well, and as rare: each gateway's page certificate request, which
            # `rental-platform certify --db` takes from the database.
            (fleet_filter(s.prefix, "web/csr"), 1),
        ]

    def _on_connected(self, client: mqtt.Client, now: float) -> None:
        self._acks.connected()

    def _on_received(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        self._ingest.receive(msg, partial(self.puback, client, msg.mid, msg.qos))

    def _on_published(self, mid: int, reason: ReasonCode) -> None:
        if not self._acks.published(mid, reason):
            self._commands.published(mid, reason)

    def _on_dropped(self) -> None:
        self._acks.dropped()
        self._commands.dropped()

    def _work(self, client: mqtt.Client, now: float) -> float:
        self._commands.publish(client)
        return self._acks.publish(client, now)


def platform_link(settings: PlatformSettings) -> Link:
    """The broker connection of an instance (`consume`) or of a command-line sender.

    An instance keeps a persistent session: clean_start false *and* an expiry, as Mosquitto
    2.0.11 saves to disk only sessions begun with clean_start false, and its session is what
    holds the events that arrive while it restarts. A sender keeps none, under a client id of
    its own. PUBACKs wait until the database has the message (manual_ack).
    """
    s = settings
    client_id = s.client_id if s.consume else f"{s.client_id}-send-{random.getrandbits(32):x}"
    return Link(
        host=s.host,
        port=s.port,
        client_id=client_id,
        tls=s.tls,
        keepalive=s.keepalive,
        connect_timeout=s.connect_timeout,
        clean_start=not s.consume,
        session_expiry=s.session_expiry if s.consume else None,
        receive_maximum=s.receive_maximum,
        manual_ack=True,
        backoff_base=s.backoff_base,
        backoff_cap=s.backoff_cap,
    )


def retire_session(settings: PlatformSettings, timeout: float = 10.0) -> None:
    """End an instance's session on the broker for good, and with it the events queued there.

    Mosquitto 2.0.11 keeps handing a shared subscription's messages to members that are
    offline, so an instance that is gone holds back its share (and every ack behind the first
    of them) until it returns or its session expires. Connecting once with clean_start and no
    expiry discards that session; the gateways send what it held again after their ack timeout.
    """
    link = Link(host=settings.host, port=settings.port, client_id=settings.client_id,
                tls=settings.tls, keepalive=settings.keepalive, clean_start=True)  # fmt: skip
    session = Session(link, LinkStats())
    runner = Runner(name="platform-retire")
    runner.add(session)
    runner.start()
    try:
        deadline = time.monotonic() + timeout
        while not session.connected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CONNACK from {settings.host}:{settings.port} within"
                                   f" {timeout} s: {session.stats.last_error}")  # fmt: skip
            time.sleep(0.02)
    finally:
        runner.stop()
