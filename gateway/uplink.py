"""The gateway's side of the uplink: the journal and commands as `cloud_sync` wants them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloud_sync.runner import Runner
from cloud_sync.uplink import TlsFiles, UplinkSession, UplinkSettings
from gateway import __version__
from gateway.commands import CommandExecutor
from gateway.config import Config
from gateway.store import Store


class StoreJournal:
    """`cloud_sync.uplink.Journal` over the store (called on the uplink's thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        return self._store.pending_bodies(after_seq, limit)

    def acknowledge(self, seq: int) -> None:
        self._store.acknowledge(seq)

    def acked_seq(self) -> int:
        return self._store.acked_seq()

    def status(self) -> dict[str, Any]:
        return {
            "registry_version": self._store.registry_version(),
            "queue_depth": self.queue_depth(),
        }

    def queue_depth(self) -> int:
        """Events journaled and not yet acknowledged."""
        row = self._store.reader().execute(
            "SELECT count(*) FROM events WHERE seq > ?", (self._store.acked_seq(),)
        ).fetchone()
        return int(row[0])


def uplink_settings(config: Config) -> UplinkSettings:
    """The session settings from `[mqtt]` (which must be present)."""
    mqtt = config.mqtt
    assert mqtt is not None
    tls = None
    if mqtt.tls:
        # The config refuses tls = true without all three files.
        tls = TlsFiles(str(mqtt.ca_file), str(mqtt.cert_file), str(mqtt.key_file))
    return UplinkSettings(
        host=mqtt.host,
        port=mqtt.port,
        gateway_id=config.gateway.id,
        topic_prefix=mqtt.topic_prefix,
        version=__version__,
        tls=tls,
        keepalive=mqtt.keepalive_seconds,
        session_expiry=mqtt.session_expiry_seconds,
    )


class Uplink:
    """The running uplink: one session on its own runner thread, commands on another."""

    def __init__(self, config: Config, store: Store, executor: CommandExecutor) -> None:
        self.journal = StoreJournal(store)
        self.executor = executor
        self.session = UplinkSession(uplink_settings(config), self.journal, executor.submit)
        self.runner = Runner(name="uplink")
        self.runner.add(self.session)

    def start(self) -> None:
        """Start commands and the network thread."""
        self.executor.start()
        self.runner.start()

    def kick(self) -> None:
        """An event was journaled: send it now (any thread)."""
        self.runner.call_soon(self.session.kick, self.session)

    def stop(self) -> None:
        """Say offline, disconnect, stop both threads."""
        self.runner.stop()
        self.executor.stop()

    def health(self) -> dict[str, Any]:
        """Connection state for /healthz: no personal data."""
        stats = self.session.stats
        return {
            "connected": self.session.connected,
            "connects": stats.connects,
            "published": stats.published,
            "refused": stats.refused,
            "last_error": stats.last_error,
        }
