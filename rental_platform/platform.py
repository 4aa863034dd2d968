"""The city platform's reference consumer: store every gateway's events, then acknowledge them.

    platform = Platform(PlatformSettings(host="127.0.0.1", port=8883, db="city.db",
                                         client_id="platform-1", signing_key=key))
    platform.start()
    platform.wait_for(lambda: platform.watermark("gw-440305-0042") >= 10)
    counter = platform.send_command("gw-440305-0042", "unlock", {"door": "main", "seconds": 5})
    result = platform.wait_result("gw-440305-0042", counter)
    platform.stop()

This module wires the roles and offers them as one API. Each role has its module:

- the MQTT session (session.py): `cloud_sync`'s engine on a runner thread of its own, which
  owns the paho client (paho is not thread-safe);
- ingest (ingest.py): every message stored in batches on the writer thread, PUBACKed after
  its commit (paho's `manual_ack`), so a broker never drops a message the database has not got;
- acks (acks.py): one coalesced `P/ack` per gateway, from the database's watermark, never from
  one process's memory (store.py and docs/platform.md give the rule);
- commands (commands.py): counters, signing, publishing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cloud_sync.runner import Runner

from . import store
from .acks import Acks
from .commands import Commands
from .ingest import Ingest
from .session import PlatformSession
from .settings import PlatformSettings, PlatformStats
from .store import CommandRecord, Store, StoredEvent

T = TypeVar("T")


class Platform:
    """The consumer; see the module docstring. Construct, then `start()`; `stop()` at the end."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.stats = PlatformStats()
        self._acks = Acks(settings, self.stats)
        self._ingest = Ingest(settings, self.stats, post=self._post, stored=self._acks.stored,
                              failed=lambda: self._post(self._session.close))
        self._commands = Commands(settings, self.stats, write=self._ingest.write,
                                  post=self._post)
        self._session = PlatformSession(settings, self.stats, self._ingest, self._acks,
                                        self._commands)
        self._runner: Runner | None = None  # made by start(), so no thread before it
        self._stopping = False
        self._reader_lock = threading.Lock()
        self._reader: Store | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Platform:
        """Open the database (migrated, partitions made), then start the writer and the MQTT
        thread."""
        self._ingest.start()
        self._reader = self._ingest.store.sibling()
        self._runner = Runner(name="platform-mqtt")
        self._runner.add(self._session)
        self._runner.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect (the session stays on the broker), store what was received, close."""
        if self._runner is None or self._stopping:
            return
        self._stopping = True
        # A batch the writer commits after this is not PUBACKed: the broker sends it again.
        self._runner.stop(timeout)
        self._ingest.stop(timeout)
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our CONNECT and our subscriptions, and is still there."""
        return self._session.subscribed

    @property
    def running(self) -> bool:
        """False once stopped or after the writer failed (the process should exit)."""
        return self._runner is not None and not self._stopping and self.failure is None

    @property
    def failure(self) -> BaseException | None:
        """What stopped the database writer, if anything."""
        return self._ingest.failure

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Block until connected; TimeoutError if not within `timeout`."""
        try:
            self.wait_for(lambda: self.connected, timeout)
        except TimeoutError:
            raise TimeoutError(f"not connected within {timeout} s: {self.stats.last_error}") \
                from None

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0,
                 interval: float = 0.02) -> None:
        """Poll `predicate()` until it holds; TimeoutError with the stats if it does not."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s; {self.stats}")
            time.sleep(interval)

    # -- reading what was stored (any thread) -----------------------------------------------------

    def events_for(self, gateway_id: str) -> list[StoredEvent]:
        """Every stored event of a gateway, in seq order."""
        return self._query(lambda c: store.events_for(c, gateway_id))

    def watermark(self, gateway_id: str) -> int:
        """The highest seq N such that every seq <= N of this gateway is stored."""
        return int(self.gateway(gateway_id)["watermark"])

    def gateway(self, gateway_id: str) -> dict[str, Any]:
        """`watermark`, `floor`, counters and open conflict of a gateway, from the database."""
        return self._query(lambda c: store.gateway_row(c.db, gateway_id))

    def status(self, gateway_id: str) -> dict[str, Any] | None:
        """The gateway's latest status message."""
        return self._query(lambda c: store.status_of(c, gateway_id))

    def snapshot(self, gateway_id: str, event_id: str) -> bytes | None:
        """The JPEG sent for an event, if it came."""
        return self._query(lambda c: store.snapshot_bytes(c, gateway_id, event_id))

    def web_request(self, gateway_id: str) -> bytes | None:
        """The page certificate request the gateway sent up last (PEM)."""
        return self._query(lambda c: store.web_request(c.db, gateway_id))

    def rejects(self) -> list[dict[str, Any]]:
        """Rejected messages: gateway_id, topic, reason, payload (truncated), received_at."""
        return self._query(store.rejects)

    def command(self, gateway_id: str, counter: int) -> CommandRecord | None:
        """A command sent and its result so far."""
        return self._query(lambda c: store.command(c.db, gateway_id, counter))

    def latencies(self) -> list[tuple[float, float]]:
        """Per stored event: (received − gateway ts, stored − gateway ts), in seconds."""
        return self._query(store.latencies)

    def _query(self, query: Callable[[Store], T]) -> T:
        with self._reader_lock:
            reader = self._reader
            assert reader is not None
            try:
                return query(reader)
            except Exception as exc:
                if not store.transient(exc):
                    raise
            # A connection left over from before a database restart: once more, on a new one.
            reader.db.drop()
            return query(reader)

    # -- commands -------------------------------------------------------------------------------

    def send_command(self, gateway_id: str, cmd: str, args: dict[str, Any],
                     timeout: float = 10.0) -> int:
        """Sign and publish a command; return its counter once the broker accepted it.

        The counter is allocated in the database (shared by every instance), strictly above
        the gateway's previous one. Raises CommandNotAccepted if the broker refuses it, and
        TimeoutError if no connection accepted it within `timeout`.
        """
        return self._commands.send(gateway_id, cmd, args, timeout)

    def send_registry(self, gateway_id: str, version: int | str, base_version: int | str | None,
                      tenants: list[dict[str, Any]], removed: list[Any],
                      timeout: float = 10.0) -> int:
        """Send a `registry.apply`: `base_version` None replaces the whole registry."""
        args = {"version": version, "base_version": base_version, "tenants": tenants,
                "removed": removed}
        return self.send_command(gateway_id, "registry.apply", args, timeout)

    def wait_result(self, gateway_id: str, counter: int, timeout: float = 30.0) -> CommandRecord:
        """Block until the gateway's result for `counter` is stored (by any instance)."""
        found: list[CommandRecord] = []

        def arrived() -> bool:
            record = self.command(gateway_id, counter)
            if record is not None and record.ok is not None:
                found.append(record)
                return True
            return False

        self.wait_for(arrived, timeout)
        return found[0]

    # -- wiring ---------------------------------------------------------------------------------

    def _post(self, function: Callable[[], None]) -> None:
        """Run `function()` on the MQTT thread (from any thread), then service the session.

        Once stopped, nothing runs there any more.
        """
        if self._runner is None:
            raise RuntimeError("the platform is not running")
        self._runner.call_soon(function, self._session)
