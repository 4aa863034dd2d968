"""Acks: one coalesced `P/ack` per gateway, from the watermark the database stored.

`P/ack {"seq": N}` tells a gateway that every event with seq <= N is stored, and it then
forgets them: N is the watermark read inside the transaction that stored the events (see
store.py and docs/platform.md for the rule), never a count in one process's memory. At most
one ack per gateway per `ack_interval`, with the latest watermark. Everything here runs on
the session's thread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.topics import Topics

from .settings import PlatformSettings, PlatformStats
from .store import BatchOutcome

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _AckState:
    want: int = 0  # the watermark read after our last batch touching this gateway
    sent: int = 0  # the last one published
    sent_at: float = float("-inf")
    force: bool = False  # publish even if unchanged: the gateway sent an event again


class Acks:
    """What each gateway is owed, and publishing it."""

    def __init__(self, settings: PlatformSettings, stats: PlatformStats) -> None:
        self.settings = settings
        self.stats = stats
        self._acks: dict[str, _AckState] = {}
        self._dirty: set[str] = set()  # gateways with an ack to publish
        self._mids: dict[int, str] = {}  # acks published and not yet PUBACKed

    def stored(self, outcome: BatchOutcome) -> None:
        """A batch is committed: its gateways' watermarks are owed."""
        for gateway_id, watermark in outcome.watermarks.items():
            state = self._acks.setdefault(gateway_id, _AckState())
            state.want = max(state.want, watermark)
            if gateway_id in outcome.resend_ack:
                state.force = True
            if state.force or state.want > state.sent:
                self._dirty.add(gateway_id)

    def connected(self) -> None:
        """A new connection: what the last one did not get out goes on this one."""
        for gateway_id, state in self._acks.items():
            if state.force or state.want > state.sent:
                self._dirty.add(gateway_id)

    def dropped(self) -> None:
        """Acks whose PUBACK we did not see may be lost: publish them again."""
        for gateway_id in set(self._mids.values()):
            self._acks[gateway_id].force = True
            self._dirty.add(gateway_id)
        self._mids.clear()

    def published(self, mid: int, reason: ReasonCode) -> bool:
        """The broker answered a publish; False if it was not an ack."""
        gateway_id = self._mids.pop(mid, None)
        if gateway_id is None:
            return False
        if reason.is_failure:
            self.stats.last_error = f"ack to {gateway_id} refused: {reason}"
            log.error("broker refused our ack to %s: %s", gateway_id, reason)
        return True

    def publish(self, client: mqtt.Client, now: float) -> float:
        """Publish the acks that are due; seconds until the next one is (at most 1)."""
        interval = self.settings.ack_interval
        wait = 1.0
        for gateway_id in list(self._dirty):
            state = self._acks[gateway_id]
            if now < state.sent_at + interval:
                wait = min(wait, state.sent_at + interval - now)
                continue
            self._dirty.discard(gateway_id)
            if state.want <= 0:
                continue  # nothing stored yet: no ack says anything
            payload = json.dumps({"seq": state.want}).encode()
            info = client.publish(Topics(self.settings.prefix, gateway_id).ack, payload, qos=1)
            self._mids[info.mid] = gateway_id
            state.sent, state.sent_at, state.force = state.want, now, False
            self.stats.acks_sent += 1
        return wait
