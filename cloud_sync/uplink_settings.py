"""How an uplink session is set up, and what it counts (the session itself: uplink.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import MAX_ENVELOPE_BYTES
from .session import Link, LinkStats
from .topics import Topics
from .transport import TlsFiles

# The largest downlink is a command envelope (a registry.apply); the rest is room for the
# topic and properties. Announced in CONNECT: the broker drops a larger PUBLISH for us instead
# of delivering it (Mosquitto 2.0.11 logs "Dropping too large outgoing PUBLISH"), so it
# never reaches paho, which would read it whole into memory first.
MAX_DOWNLINK_PACKET = MAX_ENVELOPE_BYTES + 64 * 1024


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Where to connect and how; the defaults are the production ones."""

    host: str
    port: int
    gateway_id: str
    topic_prefix: str = "rental/v1"
    version: str = "0"
    tls: TlsFiles | None = None
    keepalive: int = 30
    session_expiry: int = 7 * 24 * 3600
    connect_timeout: float = 10.0
    # Events published but not yet PUBACKed. Mosquitto's own default window is 20 per
    # client; a larger one only queues inside the broker (see docs/uplink.md for the figures).
    window: int = 100
    batch: int = 500  # events read from the journal at a time
    # The will says offline and every connect says online; the periodic status only refreshes
    # queue_depth. At 300 s, 7,024 gateways sent more statuses (23/s) than events (16/s).
    status_interval: float = 1800.0
    # No ack progress for this long while events wait, with nothing in flight: the platform
    # lost them (a broker restored from an old save, say); send again from the watermark.
    ack_timeout: float = 60.0
    # While the platform stays silent the wait doubles after each resend, up to this: a
    # consumer down for an hour must not get every pending event sixty times over (the broker
    # would queue about 31 messages per event and fill in under an hour at the average rate).
    ack_timeout_cap: float = 1800.0
    backoff_base: float = 1.0
    backoff_cap: float = 120.0
    max_packet_bytes: int = MAX_DOWNLINK_PACKET  # announced in CONNECT; see the constant
    # The local page's certificate request (PEM), published retained on every connect so the
    # city finds the newest one whenever it looks (SPEC 3 `P/web/csr`); None: no page key.
    web_csr: bytes | None = None

    @property
    def topics(self) -> Topics:
        """This gateway's topics."""
        return Topics(self.topic_prefix, self.gateway_id)

    @property
    def link(self) -> Link:
        """The broker connection: the gateway id is the client id (and the username when
        there is no certificate to name it); a persistent session that says how large a
        message may come down."""
        return Link(
            host=self.host,
            port=self.port,
            client_id=self.gateway_id,
            tls=self.tls,
            username=self.gateway_id,
            keepalive=self.keepalive,
            connect_timeout=self.connect_timeout,
            clean_start=False,
            session_expiry=self.session_expiry,
            max_packet_bytes=self.max_packet_bytes,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
        )


@dataclass(slots=True)
class UplinkStats(LinkStats):
    """Counters for health reports, benchmarks and tests (the connection's in LinkStats)."""

    published: int = 0
    resent: int = 0  # events sent again after an ack timeout (not those after a reconnect)
    refused: int = 0  # PUBACKs with a failure reason code (ACL, quota)
    unheard: int = 0  # events the broker accepted with "no matching subscribers" (0x10)
    acks: int = 0
    commands: int = 0
    # Downlink messages refused before they could do anything (malformed, oversize, retained,
    # an ack for a seq not sent on this connection), in all and by reason.
    downlink_refused: int = 0
    downlink_refusals: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    snapshots_refused: int = 0
