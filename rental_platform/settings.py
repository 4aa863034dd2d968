"""What a platform instance is told, and what it counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.session import LinkStats
from cloud_sync.transport import TlsFiles

from .store import Limits


@dataclass(frozen=True, slots=True)
class PlatformSettings:
    """Where to connect, where to store, how to behave; defaults are the production ones."""

    host: str
    port: int
    db: str | Path  # a PostgreSQL URL or a SQLite file (store/opening.py)
    store_key: Path | None = None  # default: see StoreConfig.for_url
    snapshot_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    upkeep_interval: float = 3600.0  # partitions ahead, retention
    # The persistent session's key: stable across restarts, different for every instance.
    # Under TLS with `use_username_as_clientid` the broker uses the certificate's name instead.
    client_id: str = "rental-platform"
    group: str = "rental-platform"  # the shared subscription's group
    prefix: str = "rental/v1"
    tls: TlsFiles | None = None
    signing_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    # False: a command-line sender. It stores command results but takes no share of events,
    # keeps no session, and uses a client id of its own.
    consume: bool = True
    session_expiry: int = 7 * 24 * 3600
    keepalive: int = 30
    connect_timeout: float = 10.0
    # QoS 1 messages the broker may have in flight to us; wider than a batch so that a commit
    # (one fsync) does not starve the pipe. Mosquitto also caps it (max_inflight_messages).
    receive_maximum: int = 1000
    ack_interval: float = 0.1  # at most one P/ack per gateway per interval
    batch_max: int = 2000  # messages per transaction
    command_lifetime: timedelta = timedelta(minutes=10)
    # Counters start at least at this clock's milliseconds, so a database restored from an
    # old backup still issues counters above those the gateways have already accepted.
    wall_clock: Callable[[], float] = time.time
    backoff_base: float = 0.2
    backoff_cap: float = 10.0


@dataclass(slots=True)
class PlatformStats(LinkStats):
    """Counters for tests, benchmarks and the log line of `rental-platform run`.

    The connection's own (connects, disconnects, connect_failures, last_error) are the
    session engine's, in `LinkStats`.
    """

    received: int = 0
    stored: int = 0
    duplicates: int = 0  # events received again and dropped (the dedupe at work)
    conflicts: int = 0  # same (gateway, seq), different event
    rejected: int = 0
    statuses: int = 0
    results: int = 0
    snapshots: int = 0
    batches: int = 0
    pubacks: int = 0
    acks_sent: int = 0
    commands_sent: int = 0
