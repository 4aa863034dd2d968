"""The MQTT topics of SPEC 3 for one gateway, and the wildcards the platform subscribes to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """`P/...` topics where P is `{prefix}/{gateway_id}`."""

    prefix: str
    gateway_id: str

    @property
    def base(self) -> str:
        """P itself."""
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def status(self) -> str:
        """Up, retained: online/offline, registry version, queue depth."""
        return f"{self.base}/status"

    @property
    def events(self) -> str:
        """Up: one JSON event per message."""
        return f"{self.base}/events"

    def snapshot(self, event_id: str) -> str:
        """Up: the JPEG of one access event."""
        return f"{self.base}/snapshots/{event_id}"

    @property
    def ack(self) -> str:
        """Down: `{"seq": N}`, everything up to N is stored centrally."""
        return f"{self.base}/ack"

    @property
    def cmd(self) -> str:
        """Down: signed command envelopes."""
        return f"{self.base}/cmd"

    @property
    def cmd_result(self) -> str:
        """Up: `{"counter", "ok", "error"}` for each command received."""
        return f"{self.base}/cmd/result"

    @property
    def web_csr(self) -> str:
        """Up, retained: the local page's certificate request (PEM), for the city to sign."""
        return f"{self.base}/web/csr"


def fleet_filter(prefix: str, leaf: str) -> str:
    """The filter matching `leaf` (e.g. "events") of every gateway under `prefix`."""
    return f"{prefix}/+/{leaf}"


def gateway_of(prefix: str, topic: str) -> str | None:
    """The gateway id in a topic under `prefix`, or None if it is not one of ours."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    gateway_id, _, rest = topic[len(head) :].partition("/")
    return gateway_id if gateway_id and rest else None
