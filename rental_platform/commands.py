"""Commands: counters, signing, publishing, and what the broker said to each.

A command's counter comes from the database (shared by every instance), strictly above the
gateway's previous one; the envelope is signed (SPEC 7) and published QoS 1 on `P/cmd` from
the session's thread; `send` returns once the broker accepted it. A command waiting for its
PUBACK when the connection drops is published again on the next one. The gateway's result
arrives like any message and is stored by ingest.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.envelope import seal_command
from cloud_sync.session import properties
from cloud_sync.topics import Topics

from . import store
from .settings import PlatformSettings, PlatformStats


class CommandNotAccepted(Exception):
    """The broker refused the command's publish (e.g. 0x87: not authorised by its ACL)."""


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    properties: Properties
    done: Future[int]
    mid: int | None = None  # published on the current connection, waiting for its PUBACK


class Commands:
    """Signed commands to gateways."""

    def __init__(
        self,
        settings: PlatformSettings,
        stats: PlatformStats,
        write: Callable[[Callable[[Any], Any]], Any],
        post: Callable[[Callable[[], None]], None],
    ) -> None:
        """`write(fn)` runs fn(connection) on the database's writer thread; `post(fn)` runs fn
        on the session's thread."""
        self.settings = settings
        self.stats = stats
        self._write = write
        self._post = post
        self._outbox: dict[int, _Outgoing] = {}  # session's thread only
        self._tokens = itertools.count(1)

    def send(self, gateway_id: str, cmd: str, args: dict[str, Any], timeout: float) -> int:
        """Sign and publish a command; its counter once the broker accepted it (any thread)."""
        key = self.settings.signing_key
        if key is None:
            raise RuntimeError("no signing key: commands cannot be sent")
        floor = int(self.settings.wall_clock() * 1000)
        counter: int = self._write(lambda c: store.next_counter(c.db, gateway_id, floor))
        issued = datetime.now(UTC).replace(microsecond=0)
        lifetime = self.settings.command_lifetime
        envelope = seal_command(
            key,
            gateway_id=gateway_id,
            counter=counter,
            cmd=cmd,
            args=args,
            issued_at=issued,
            lifetime=lifetime,
        )
        summary = _summary(cmd, args)
        self._write(
            lambda c: store.record_command(
                c.db,
                gateway_id,
                counter,
                cmd,
                summary,
                issued.isoformat(),
                (issued + lifetime).isoformat(),
            )
        )
        topics = Topics(self.settings.prefix, gateway_id)
        props = properties(PacketTypes.PUBLISH)
        # The gateway's ACL lets it write only P/cmd/result: answer there.
        props.ResponseTopic = topics.cmd_result
        props.CorrelationData = f"{gateway_id}/{counter}".encode()
        # The broker drops a command nobody fetched before it expired.
        props.MessageExpiryInterval = max(1, int(lifetime.total_seconds()))
        outgoing = _Outgoing(topics.cmd, envelope, props, Future())
        token = next(self._tokens)
        self._post(lambda: self._queue(token, outgoing))
        try:
            reason = outgoing.done.result(timeout)
        except TimeoutError:
            self._post(lambda: self._forget(token))
            raise TimeoutError(
                f"command {counter} to {gateway_id} not accepted by the broker within {timeout} s"
            ) from None
        if reason >= 0x80:
            raise CommandNotAccepted(
                f"broker refused command {counter} to {gateway_id}: reason {reason:#x}"
            )
        self._write(lambda c: store.command_sent(c.db, gateway_id, counter, time.time()))
        self.stats.commands_sent += 1
        return counter

    # -- on the session's thread ----------------------------------------------------------------

    def _queue(self, token: int, outgoing: _Outgoing) -> None:
        self._outbox[token] = outgoing  # published by the session's next `publish`

    def _forget(self, token: int) -> None:
        self._outbox.pop(token, None)

    def publish(self, client: mqtt.Client) -> None:
        """Publish every command not yet out on this connection."""
        for outgoing in self._outbox.values():
            if outgoing.mid is None:
                info = client.publish(outgoing.topic, outgoing.payload, qos=1,
                                      properties=outgoing.properties)  # fmt: skip
                outgoing.mid = info.mid

    def dropped(self) -> None:
        """No PUBACK will come on that connection: publish them again on the next."""
        for outgoing in self._outbox.values():
            outgoing.mid = None

    def published(self, mid: int, reason: ReasonCode) -> bool:
        """The broker answered a publish; False if it was not a command."""
        for token, outgoing in list(self._outbox.items()):
            if outgoing.mid == mid:
                del self._outbox[token]
                outgoing.done.set_result(int(reason.value))
                return True
        return False


def _summary(cmd: str, args: dict[str, Any]) -> str:
    """What to keep of a command's arguments: never a registry's tenants."""
    if cmd == "registry.apply":
        kept = {
            "version": args.get("version"),
            "base_version": args.get("base_version"),
            "tenants": len(args.get("tenants") or []),
            "removed": len(args.get("removed") or []),
        }
    else:
        kept = args
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
