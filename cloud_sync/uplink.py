"""One gateway's MQTT session with the city broker: events up, acks and commands down.

The journal is the only queue. paho keeps its session and its outgoing queue in memory, so a
process that dies loses them; here an event leaves the pending set only when the platform's
`P/ack` covers it, never on a PUBACK (a broker can acknowledge and then crash before saving).
After every (re)connect the session starts again from the acknowledged watermark, which is why
each connection gets a fresh paho client (session.py): the old one would also replay its
in-memory queue.

An `UplinkSession` is a `Session` (session.py): the engine connects, backs off, subscribes again
and reconnects; this module says what the connection is for. It is driven by one `Runner`
thread (see runner.py), which owns its paho client: paho is not thread-safe. Other threads talk
to a session only through `Runner.call_soon`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from .payload import PayloadRefused, parse_object
from .session import Session, properties
from .transport import TlsFiles
from .uplink_settings import MAX_DOWNLINK_PACKET, UplinkSettings, UplinkStats

__all__ = [
    "MAX_DOWNLINK_PACKET",
    "Journal",
    "Snapshots",
    "TlsFiles",
    "UplinkSession",
    "UplinkSettings",
    "UplinkStats",
]

log = logging.getLogger(__name__)

_NO_MATCHING_SUBSCRIBERS = 0x10
_UNHEARD_RETRY = 5.0  # seconds
# `{"seq": N}` is under 40 bytes; an ack this large is not one, so it is never parsed.
MAX_ACK_BYTES = 1024


class Journal(Protocol):
    """What the session needs from the gateway's event journal."""

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        """Unacknowledged events above `after_seq`, in seq order: (seq, JSON bytes)."""
        ...

    def acknowledge(self, seq: int) -> None:
        """The platform stored every event up to `seq`."""
        ...

    def acked_seq(self) -> int:
        """The acknowledgement watermark."""
        ...

    def status(self) -> dict[str, Any]:
        """The status message's fields besides `state`, `ts` and `version`: at least
        `registry_version` and `queue_depth`, and whatever else the city's fleet page shows."""
        ...


class Snapshots(Protocol):
    """Entry snapshots waiting to go up; large, so they only travel when no event waits.

    One is on the wire at a time; the next is asked for once the broker answered.
    """

    def next_snapshot(self) -> tuple[str, bytes] | None:
        """The oldest (event_id, JPEG) still to go up, or None."""
        ...

    def snapshot_done(self, event_id: str, accepted: bool) -> None:
        """The broker stored it (accepted) or refused it for good (too large, ACL)."""
        ...


# A command's envelope bytes → the result object `{"counter", "ok", "error"}`. Runs on a
# worker thread, never on the session's: a registry update can take a second.
CommandHandler = Callable[[bytes], dict[str, Any]]


@dataclass(slots=True)
class _Connection:
    """State that lives exactly as long as one accepted connection (and its paho client)."""

    client: mqtt.Client
    cursor: int = 0  # the last seq published, where sending carries on
    highest: int = 0  # highest seq published on this connection: no ack may go beyond it
    inflight: dict[int, int] = field(default_factory=dict)  # mid → seq (0: status/result)
    floor_sent: int = -1  # the `acked` user property last attached to an event
    snapshot_mid: int | None = None
    snapshot_id: str | None = None
    snapshot_after: float = 0.0  # no snapshot before this (monotonic): nobody was listening
    buffer: deque[tuple[int, bytes]] = field(default_factory=deque)


class UplinkSession(Session[UplinkStats]):
    """The MQTT session of one gateway. Every method runs on its runner's thread."""

    def __init__(
        self,
        settings: UplinkSettings,
        journal: Journal,
        commands: Callable[[bytes, Callable[[dict[str, Any]], None]], None] | None = None,
        snapshots: Snapshots | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Describe the session; nothing connects until the runner calls `service()`.

        `commands(envelope, reply)` is given each `P/cmd` message and must call `reply(result)`
        later from any thread through the runner (the Runner wires that up).
        """
        super().__init__(settings.link, UplinkStats(), clock)
        self.settings = settings
        self.topics = settings.topics
        self.journal = journal
        self.commands = commands
        self.snapshots = snapshots
        self._conn: _Connection | None = None  # while connected
        self._next_status = 0.0
        self._last_ack_progress = 0.0
        # How long events may wait for an ack before they are sent again: ack_timeout, 5 s
        # after a PUBACK 0x10 (nobody subscribed: they are lost), doubling after each resend
        # while no ack comes (see ack_timeout_cap), back to ack_timeout on the next ack.
        self._ack_wait = settings.ack_timeout
        self._acked = -1

    def kick(self) -> None:
        """New events were journaled: publish them now rather than at the next sweep."""
        if self._conn is not None:
            self._pump(self._clock())

    def reply(self, result: dict[str, Any], response_topic: str | None, correlation: bytes | None,
              ) -> None:  # fmt: skip
        """Publish a command result (runner thread)."""
        if self._conn is None:
            log.warning("command result %r lost: not connected", result)
            return
        props = properties(PacketTypes.PUBLISH)
        if correlation is not None:
            props.CorrelationData = correlation
        topic = response_topic if response_topic and _under(response_topic, self.topics.base) \
            else self.topics.cmd_result  # fmt: skip
        info = self._conn.client.publish(
            topic, json.dumps(result, separators=(",", ":")), qos=1, properties=props
        )
        self._conn.inflight[info.mid] = 0

    # ---------------------------------------------------------------- connection

    def _prepare(self, client: mqtt.Client) -> None:
        # paho's own queue would only duplicate the journal; it must never drop silently.
        client.max_inflight_messages_set(self.settings.window + 10)
        client.will_set(self.topics.status, self._status_payload("offline"), qos=1, retain=True)

    def _subscriptions(self) -> list[tuple[str, int]]:
        return [(self.topics.ack, 1), (self.topics.cmd, 1)]

    def _on_connected(self, client: mqtt.Client, now: float) -> None:
        conn = self._conn = _Connection(client)
        acked = self.journal.acked_seq()
        conn.cursor = acked
        self._acked = acked
        self._last_ack_progress = now
        log.info("uplink connected to %s:%d; sending from seq %d", self.settings.host,
                 self.settings.port, acked + 1)  # fmt: skip
        self._publish_status("online")
        if self.settings.web_csr is not None:
            info = client.publish(self.topics.web_csr, self.settings.web_csr, qos=1, retain=True)
            conn.inflight[info.mid] = 0
        self._pump(now)

    def _on_dropped(self) -> None:
        self._conn = None

    def _work(self, client: mqtt.Client, now: float) -> float:
        self._pump(now)
        if self._conn is not None and now >= self._next_status:
            self._publish_status("online")
        return 0.5

    def _before_close(self, client: mqtt.Client) -> None:
        self._publish_status("offline")

    # -------------------------------------------------------------------- sending

    def _pump(self, now: float) -> None:
        """Fill the in-flight window from the journal; then a snapshot if nothing waits."""
        conn = self._conn
        assert conn is not None
        events = sum(1 for seq in conn.inflight.values() if seq > 0)
        timeout = self._ack_wait
        if (
            events == 0
            and not conn.buffer
            and self._acked < conn.cursor
            and now - self._last_ack_progress > timeout
        ):
            log.warning("no ack for events %d..%d in %.0f s: sending them again",
                        self._acked + 1, conn.cursor, timeout)  # fmt: skip
            self.stats.resent += conn.cursor - self._acked
            conn.cursor = self._acked
            self._last_ack_progress = now
            self._ack_wait = min(self.settings.ack_timeout_cap, self._ack_wait * 2)
        while events < self.settings.window:
            if not conn.buffer:
                conn.buffer.extend(self.journal.pending(conn.cursor, self.settings.batch))
                if not conn.buffer:
                    break
            seq, body = conn.buffer.popleft()
            # An ack that came while the event waited here covers it: no longer pending.
            if seq <= conn.cursor or seq <= self._acked:
                continue
            props = None
            if conn.floor_sent != self._acked:
                # The consumer's floor for this gateway: every seq up to it is stored centrally
                # already. Sent when it moves, not on every event: paho's Properties cost
                # more than the rest of a publish.
                props = properties(PacketTypes.PUBLISH)
                props.UserProperty = [("acked", str(self._acked))]
                conn.floor_sent = self._acked
            info = conn.client.publish(self.topics.events, body, qos=1, properties=props)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._drop(f"publish failed: {mqtt.error_string(info.rc)}")
                return
            if self._acked >= conn.cursor:
                # Nothing was waiting for an ack: the ack timeout runs from this send, not
                # from the last ack, which may be an hour old in a quiet building.
                self._last_ack_progress = now
            conn.inflight[info.mid] = seq
            conn.cursor = seq
            conn.highest = max(conn.highest, seq)
            self.stats.published += 1
            events += 1
        if events == 0 and not conn.buffer and conn.snapshot_mid is None:
            self._send_snapshot(conn, now)

    def _send_snapshot(self, conn: _Connection, now: float) -> None:
        if self.snapshots is None or now < conn.snapshot_after:
            return
        item = self.snapshots.next_snapshot()
        if item is None:
            return
        event_id, jpeg = item
        info = conn.client.publish(self.topics.snapshot(event_id), jpeg, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop(f"publish failed: {mqtt.error_string(info.rc)}")
            return
        conn.snapshot_mid = info.mid
        conn.snapshot_id = event_id

    def _publish_status(self, state: str) -> mqtt.MQTTMessageInfo | None:
        conn = self._conn
        if conn is None:
            return None
        # Jittered, so gateways that connected together do not report together forever after.
        interval = self.settings.status_interval
        self._next_status = self._clock() + self._backoff.rng.uniform(0.5 * interval, interval)
        info = conn.client.publish(self.topics.status, self._status_payload(state), qos=1,
                                   retain=True)  # fmt: skip
        conn.inflight[info.mid] = 0
        return info

    def _status_payload(self, state: str) -> bytes:
        body = {
            "registry_version": None,
            "queue_depth": 0,
            **self.journal.status(),
            "state": state,
            "ts": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "version": self.settings.version,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def _on_published(self, mid: int, reason: ReasonCode) -> None:
        conn = self._conn
        if conn is None:
            return
        if mid == conn.snapshot_mid:
            conn.snapshot_mid = None
            if conn.snapshot_id is None or self.snapshots is None:
                return
            if reason.value == _NO_MATCHING_SUBSCRIBERS:
                # Nobody took it: the platform's consumers are not back yet. Again later.
                conn.snapshot_after = self._clock() + _UNHEARD_RETRY
            elif reason.is_failure:
                # Refused for good (too large for the broker, ACL): sending it again would
                # block every snapshot behind it.
                self.stats.snapshots_refused += 1
                log.error("broker refused snapshot of event %s: %s", conn.snapshot_id, reason)
                self.snapshots.snapshot_done(conn.snapshot_id, accepted=False)
            else:
                self.stats.snapshots += 1
                self.snapshots.snapshot_done(conn.snapshot_id, accepted=True)
            return
        seq = conn.inflight.pop(mid, None)
        if seq and reason.value == _NO_MATCHING_SUBSCRIBERS:
            # Accepted and dropped: no platform consumer was subscribed (a broker restarted
            # without its sessions, before the consumers came back). Waiting the full ack
            # timeout would hold these events back for a minute.
            self.stats.unheard += 1
            self._ack_wait = min(self._ack_wait, _UNHEARD_RETRY)
        if reason.is_failure:
            # Not stored by the broker (ACL, quota): the event stays pending and is sent again
            # after the ack timeout; paho's is_published() would have said True here.
            self.stats.refused += 1
            self.stats.last_error = f"broker refused seq {seq}: {reason}"
            log.error("broker refused publish of seq %s: %s", seq, reason)
        # Called from inside loop_read: the next events go out on the runner's next service.

    # ------------------------------------------------------------------ receiving

    def _on_received(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        # Nothing a message holds may raise into paho and on into the runner's loop: that
        # would end the thread that owns the connection. Every refusal is counted and logged
        # with its reason, never its content.
        conn = self._conn
        if conn is None:
            return
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._refuse("a topic that is not UTF-8", "bad_topic", "not subscribed to")
            return
        if topic not in (self.topics.ack, self.topics.cmd):
            self._refuse(topic, "unexpected_topic", "not subscribed to")
        elif msg.retain:
            # Only the platform writes here, and never retained: a retained ack would be
            # delivered again on every reconnect, long after the seqs it names were sent.
            self._refuse(topic, "retained", "retained message")
        elif topic == self.topics.ack:
            self._on_ack(conn, bytes(msg.payload))
        else:
            self._on_command(msg)

    def _on_ack(self, conn: _Connection, payload: bytes) -> None:
        try:
            data = parse_object(payload, max_bytes=MAX_ACK_BYTES)
        except PayloadRefused as refused:
            self._refuse(self.topics.ack, refused.reason, refused.detail)
            return
        seq = data.get("seq")
        if type(seq) is not int or seq < 0 or len(data) != 1:
            self._refuse(self.topics.ack, "wrong_type", 'not {"seq": non-negative integer}')
            return
        if seq > max(conn.highest, self._acked):
            # The platform acks only what it stored, and after each connect the gateway sends
            # everything again from its watermark: an ack above what this connection sent is
            # forged or stale, and taking it would drop events the city may never have stored.
            self._refuse(self.topics.ack, "ack_ahead",
                         f"seq {seq} is above {conn.highest}, the highest sent on this connection")
            return
        self.stats.acks += 1
        if seq <= self._acked:
            return
        self.journal.acknowledge(seq)
        self._acked = self.journal.acked_seq()
        self._last_ack_progress = self._clock()
        self._ack_wait = self.settings.ack_timeout

    def _refuse(self, topic: str, reason: str, detail: str) -> None:
        stats = self.stats
        stats.downlink_refused += 1
        stats.downlink_refusals[reason] = stats.downlink_refusals.get(reason, 0) + 1
        log.warning("refused a message on %s: %s (%s)", topic, reason, detail)

    def _on_command(self, msg: mqtt.MQTTMessage) -> None:
        self.stats.commands += 1
        if self.commands is None:
            log.warning("command received but this session takes none")
            return
        props = msg.properties
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None

        def reply(result: dict[str, Any]) -> None:  # from the command worker's thread
            self.call_soon(lambda: self.reply(result, response, correlation))

        self.commands(bytes(msg.payload), reply)


def _under(topic: str, base: str) -> bool:
    return topic.startswith(base + "/") and "+" not in topic and "#" not in topic
