"""The gateway's side of the uplink: the journal and commands as `cloud_sync` wants them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloud_sync.runner import Runner
from cloud_sync.uplink import TlsFiles, UplinkSession, UplinkSettings
from gateway import __version__
from gateway.certificates import page_request
from gateway.clock import clock_synchronised
from gateway.commands import CommandExecutor
from gateway.config import Config
from gateway.parts.door import CAMERA_DOWN_KEY
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.camera.snapshots import SnapshotStore

log = logging.getLogger(__name__)


class StoreJournal:
    """`cloud_sync.uplink.Journal` over the store (called on the uplink's thread)."""

    def __init__(self, store: Store, building: str = "", camera: bool = False) -> None:
        self._store = store
        self._building = building
        self._camera = camera

    def pending(self, after_seq: int, limit: int) -> Sequence[tuple[int, bytes]]:
        return self._store.pending_bodies(after_seq, limit)

    def acknowledge(self, seq: int) -> None:
        self._store.acknowledge(seq)

    def acked_seq(self) -> int:
        return self._store.acked_seq()

    def status(self) -> dict[str, Any]:
        """What the city's fleet page shows of this gateway (docs/uplink.md, "Status")."""
        camera = None
        if self._camera:
            camera = "offline" if self._store.get_meta(CAMERA_DOWN_KEY) else "online"
        return {
            "registry_version": self._store.registry_version(),
            "queue_depth": self.queue_depth(),
            "building": self._building,
            "clock_synced": clock_synchronised(),
            "readers_offline": self._store.readers_offline(),
            "camera": camera,
        }

    def queue_depth(self) -> int:
        """Events journaled and not yet acknowledged."""
        return self._store.queue_depth()


class SnapshotOutbox:
    """`cloud_sync.uplink.Snapshots` over the journal and the snapshot folder (uplink thread).

    A snapshot goes up only once the platform has acknowledged its event (never ahead of
    it), in seq order. What is left to send survives restarts: the outbox is the journal
    above `snapshot_sent_seq`. A file that is gone (retention, disk floor) or no longer
    matches the sha256 its event recorded is skipped, and logged.
    """

    def __init__(self, store: Store, snapshots: SnapshotStore) -> None:
        self._store = store
        self._snapshots = snapshots
        self._on_wire: tuple[str, int] | None = None  # (event_id, seq) of the one sent

    def next_snapshot(self) -> tuple[str, bytes] | None:
        store = self._store
        after, upto = store.snapshot_sent_seq(), store.acked_seq()
        while after < upto:
            ref = store.next_snapshot(after, upto)
            if ref is None:
                store.snapshots_sent(upto)  # nothing to send up to the ack
                return None
            data = self._snapshots.read(ref.event_id, datetime.fromisoformat(ref.ts))
            if data is not None and hashlib.sha256(data).hexdigest() == ref.sha256:
                self._on_wire = (ref.event_id, ref.seq)
                return ref.event_id, data
            log.warning(
                "snapshot of event %d not sent: %s",
                ref.seq,
                "file missing" if data is None else "sha256 differs from the event's",
            )
            store.snapshots_sent(ref.seq)
            after = ref.seq
        return None

    def snapshot_done(self, event_id: str, accepted: bool) -> None:
        # Refused for good or taken: either way the next one is due (the session logs a refusal).
        if self._on_wire is not None and self._on_wire[0] == event_id:
            self._store.snapshots_sent(self._on_wire[1])
            self._on_wire = None



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
        web_csr=page_request(config.web),
    )


class Uplink:
    """The running uplink: one session on its own runner thread, commands on another."""

    def __init__(
        self,
        config: Config,
        store: Store,
        executor: CommandExecutor,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.journal = StoreJournal(store, config.building.code, config.camera is not None)
        self.executor = executor
        self.outbox = None if snapshots is None else SnapshotOutbox(store, snapshots)
        self.session = UplinkSession(uplink_settings(config), self.journal, executor.submit,
                                     snapshots=self.outbox)  # fmt: skip
        self.runner = Runner(name="uplink")
        self.runner.add(self.session)
        self._running = False

    def start(self) -> None:
        """Start commands and the network thread."""
        self.executor.start()
        self.runner.start()
        self._running = True

    def kick(self) -> None:
        """An event was journaled: send it now (any thread)."""
        self.runner.call_soon(self.session.kick, self.session)

    def stop(self) -> None:
        """Say offline, disconnect, stop both threads."""
        self._running = False
        self.runner.stop()
        self.executor.stop()

    def problems(self) -> list[str]:
        """What only a restart mends: a thread that ended (an exception it did not expect).

        Nothing else would notice: the door path carries on, /healthz said "ok" and the
        watchdog was fed while no event went up and no command ran.
        """
        if not self._running:
            return []
        found = []
        if not self.runner.is_alive():
            found.append("uplink_thread_stopped")
        if not self.executor.is_alive():
            found.append("command_worker_stopped")
        return found

    def health(self) -> dict[str, Any]:
        """Connection state for /healthz: no personal data."""
        stats = self.session.stats
        return {
            "connected": self.session.connected,
            "threads_alive": not self.problems(),
            "connects": stats.connects,
            "published": stats.published,
            "snapshots": stats.snapshots,
            "refused": stats.refused,
            "downlink_refused": stats.downlink_refused,
            "downlink_refusals": dict(stats.downlink_refusals),
            "commands_rejected": self.executor.rejected,
            "last_error": stats.last_error,
        }
