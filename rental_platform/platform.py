"""The city platform's reference consumer: store every gateway's events, then acknowledge them.

    platform = Platform(PlatformSettings(host="127.0.0.1", port=8883, db="city.db",
                                         client_id="platform-1", signing_key=key))
    platform.start()
    platform.wait_for(lambda: platform.watermark("gw-440305-0042") >= 10)
    counter = platform.send_command("gw-440305-0042", "unlock", {"door": "main", "seconds": 5})
    result = platform.wait_result("gw-440305-0042", counter)
    platform.stop()

Two threads. The MQTT thread owns the paho client (paho is not thread-safe): it connects,
subscribes, hands every message to the writer, and sends PUBACKs, acks and commands. The writer
thread stores messages in batches (one transaction each) and only then tells the MQTT thread to
PUBACK them (paho's `manual_ack`), so a broker never drops a message the database has not got.
`P/ack` is published from the database's watermark, never from one process's memory: see
store/gateways.py and docs/platform.md for the rule. While the database is away (PostgreSQL
restarting), the writer retries the same batch with back-off; nothing is PUBACKed meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud_sync.envelope import seal_command
from cloud_sync.topics import Topics, fleet_filter, gateway_of
from cloud_sync.transport import TlsFiles, no_delay, tls_pending

from . import store
from .store import CommandRecord, Incoming, Limits, Store, StoreConfig, StoredEvent

log = logging.getLogger(__name__)

T = TypeVar("T")


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
class PlatformStats:
    """Counters for tests, benchmarks and the log line of `rental-platform run`."""

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
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    last_error: str | None = None


class CommandNotAccepted(Exception):
    """The broker refused the command's publish (e.g. 0x87: not authorised by its ACL)."""


@dataclass(slots=True)
class _AckState:
    want: int = 0  # the watermark read after our last batch touching this gateway
    sent: int = 0  # the last one published
    sent_at: float = float("-inf")
    force: bool = False  # publish even if unchanged: the gateway sent an event again


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    properties: Properties
    done: Future[int]
    mid: int | None = None


@dataclass(slots=True)
class _Received:
    message: Incoming
    client: mqtt.Client
    mid: int
    qos: int


class _Job:
    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.done: Future[Any] = Future()


_STOP = object()


class Platform:
    """The consumer; see the module docstring. Construct, then `start()`; `stop()` at the end."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.stats = PlatformStats()
        self.failure: BaseException | None = None  # what stopped the writer, if anything
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reader_lock = threading.Lock()
        self._reader: Store | None = None
        self._writer: Store | None = None
        self._db_backoff = store.Backoff(self.settings.backoff_base, self.settings.backoff_cap)
        self._upkeep_due = 0.0
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        # MQTT thread only:
        self._client: mqtt.Client | None = None
        self._online = False  # CONNACK received on self._client; _connected waits for SUBACK
        self._connect_deadline = 0.0
        self._next_attempt = 0.0
        self._failures = 0
        self._acks: dict[str, _AckState] = {}
        self._ack_dirty: set[str] = set()
        self._ack_mids: dict[int, str] = {}
        self._outbox: dict[int, _Outgoing] = {}
        self._outbox_ids = iter(range(1, 1 << 62))

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Platform:
        """Open the database (migrated, partitions made), then start the writer and the MQTT
        thread."""
        s = self.settings
        config = StoreConfig.for_url(s.db, key_file=s.store_key, snapshot_dir=s.snapshot_dir,
                                     limits=s.limits)
        self._writer = Store.open(config)
        self._upkeep(time.time())
        self._reader = self._writer.sibling()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._threads = [
            threading.Thread(target=self._run_writer, name="platform-db", daemon=True),
            threading.Thread(target=self._run_mqtt, name="platform-mqtt", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect (the session stays on the broker), store what was received, close."""
        if not self._threads:
            return
        self._stopping.set()
        self._wake()
        mqtt_thread = self._threads[1]
        mqtt_thread.join(timeout)
        self._inbox.put(_STOP)
        self._threads[0].join(timeout)
        self._threads = []
        for opened in (self._reader, self._writer):
            if opened is not None:
                opened.close()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our CONNECT and our subscriptions, and is still there."""
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        """False once stopped or after the writer failed (the process should exit)."""
        return bool(self._threads) and not self._stopping.is_set()

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Block until connected; TimeoutError if not within `timeout`."""
        if not self._connected.wait(timeout):
            raise TimeoutError(f"not connected within {timeout} s: {self.stats.last_error}")

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
        key = self.settings.signing_key
        if key is None:
            raise RuntimeError("no signing key: commands cannot be sent")
        floor = int(self.settings.wall_clock() * 1000)
        counter: int = self._db(lambda c: store.next_counter(c.db, gateway_id, floor))
        issued = datetime.now(UTC).replace(microsecond=0)
        lifetime = self.settings.command_lifetime
        envelope = seal_command(key, gateway_id=gateway_id, counter=counter, cmd=cmd, args=args,
                                issued_at=issued, lifetime=lifetime)
        summary = _summary(cmd, args)
        self._db(lambda c: store.record_command(
            c.db, gateway_id, counter, cmd, summary, issued.isoformat(),
            (issued + lifetime).isoformat()))
        topics = Topics(self.settings.prefix, gateway_id)
        props = _properties(PacketTypes.PUBLISH)
        # The gateway's ACL lets it write only P/cmd/result: answer there.
        props.ResponseTopic = topics.cmd_result
        props.CorrelationData = f"{gateway_id}/{counter}".encode()
        # The broker drops a command nobody fetched before it expired.
        props.MessageExpiryInterval = max(1, int(lifetime.total_seconds()))
        outgoing = _Outgoing(topics.cmd, envelope, props, Future())
        token = next(self._outbox_ids)
        self._call(lambda: self._queue_command(token, outgoing))
        try:
            reason = outgoing.done.result(timeout)
        except TimeoutError:
            self._call(lambda: self._outbox.pop(token, None))
            raise TimeoutError(f"command {counter} to {gateway_id} not accepted by the broker"
                               f" within {timeout} s") from None
        if reason >= 0x80:
            raise CommandNotAccepted(f"broker refused command {counter} to {gateway_id}:"
                                     f" reason {reason:#x}")
        self._db(lambda c: store.command_sent(c.db, gateway_id, counter, time.time()))
        self.stats.commands_sent += 1
        return counter

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

    # -- the writer thread ----------------------------------------------------------------------

    def _db(self, function: Callable[[Store], T]) -> T:
        """Run `function(connection)` on the writer thread, between two batches."""
        if self.failure is not None:
            raise RuntimeError("the platform's database writer failed") from self.failure
        if not self._threads:
            raise RuntimeError("the platform is not running")
        job = _Job(function)
        self._inbox.put(job)
        result: T = job.done.result(timeout=60)
        return result

    def _run_writer(self) -> None:
        conn = self._writer
        assert conn is not None
        pending: object = None
        while True:
            item = pending if pending is not None else self._inbox.get()
            pending = None
            if item is _STOP:
                return
            if isinstance(item, _Job):
                self._run_job(item)
                continue
            if time.monotonic() >= self._upkeep_due:
                self._upkeep(time.time())
            assert isinstance(item, _Received)
            batch = [item]
            while len(batch) < self.settings.batch_max:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, _Received):
                    pending = more
                    break
                batch.append(more)
            messages = [r.message for r in batch]
            try:
                outcome = self._retrying(functools.partial(store.store_batch,
                                                           messages=messages))
            except InterruptedError:
                return  # stopping while the database was away: nothing was PUBACKed
            except Exception as exc:  # not carrying on: the platform stops
                # A database we cannot write: nothing more may be acknowledged. Stop, so that
                # `rental-platform run` exits and its supervisor restarts it.
                log.exception("storing a batch failed; the platform stops")
                self.failure = exc
                self.stats.last_error = f"database: {exc}"
                self._stopping.set()
                self._wake()
                self._fail_waiting_jobs(exc)
                return
            self._count(outcome, len(batch))
            acks = [(r.client, r.mid, r.qos) for r in batch if r.qos > 0]
            self._call(functools.partial(self._after_batch, acks, outcome))

    def _run_job(self, job: _Job) -> None:
        try:
            job.done.set_result(self._retrying(job.function))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            job.done.set_exception(exc)

    def _retrying(self, work: Callable[[Store], T]) -> T:
        """`work(writer store)`, tried again with back-off while the database is away."""
        writer = self._writer
        assert writer is not None

        def failed(why: str) -> None:
            self.stats.last_error = why

        return store.retrying(writer.db, lambda _db: work(writer), self._stopping,
                              self._db_backoff, failed)

    def _upkeep(self, now: float) -> None:
        """Partitions ahead and retention (docs/platform.md, "History"), once an interval."""
        self._upkeep_due = time.monotonic() + self.settings.upkeep_interval
        with contextlib.suppress(InterruptedError):
            self._retrying(lambda c: store.upkeep(c, now))

    def _fail_waiting_jobs(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                item.done.set_exception(exc)

    def _count(self, outcome: store.BatchOutcome, size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.stored += outcome.stored
        stats.duplicates += outcome.duplicates
        stats.conflicts += outcome.conflicts
        stats.rejected += outcome.rejected
        stats.statuses += outcome.statuses
        stats.results += outcome.results
        stats.snapshots += outcome.snapshots
        if outcome.rejected:
            log.warning("%d of %d messages rejected (see the rejects table)", outcome.rejected,
                        size)

    # -- the MQTT thread ------------------------------------------------------------------------

    def _call(self, function: Callable[[], object]) -> None:
        """Run `function()` on the MQTT thread (from any thread)."""
        self._calls.put(function)
        self._wake()

    def _wake(self) -> None:
        if self._wake_w is not None:
            # A full pipe wakes the thread just as well; a closed one means we are stopping.
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_w.send(b"\0")

    def _run_mqtt(self) -> None:
        try:
            while not self._stopping.is_set():
                self._turn()
        finally:
            self._disconnect()

    def _turn(self) -> None:
        """One pass: connect if due, wait for the socket or a call, service both."""
        now = time.monotonic()
        client = self._client
        if client is None and now >= self._next_attempt:
            self._connect()
            client = self._client
        elif client is not None and not self._online and now > self._connect_deadline:
            self._drop("no CONNACK in time")
            client = None
        sock = client.socket() if client is not None else None
        assert self._wake_r is not None
        readers: list[Any] = [self._wake_r]
        writers: list[Any] = []
        timeout = self._timeout(now)
        if client is not None and sock is not None:
            readers.append(sock)
            if client.want_write():
                writers.append(sock)
            if tls_pending(sock):
                timeout = 0.0
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if client is not None and sock is not None:
            if sock in readable or tls_pending(sock):
                self._read_socket(client, sock)
            if self._client is client and sock in writable:
                self._check(client, client.loop_write(), "write")
            if self._client is client:
                self._check(client, client.loop_misc(), "keepalive")
        if self._wake_r in readable:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            call()
        self._flush_acks(time.monotonic())

    def _timeout(self, now: float) -> float:
        timeout = 1.0
        if self._client is None:
            timeout = min(timeout, max(0.0, self._next_attempt - now))
        for gateway_id in self._ack_dirty:
            due = self._acks[gateway_id].sent_at + self.settings.ack_interval
            timeout = min(timeout, max(0.0, due - now))
        return timeout

    def _read_socket(self, client: mqtt.Client, sock: Any) -> None:
        # loop_read handles about one packet per call: keep reading while bytes wait, so a
        # burst does not cost one select() per message.
        for _ in range(1000):
            self._check(client, client.loop_read(), "read")
            if self._client is not client:
                return
            if tls_pending(sock):
                continue
            if not select.select([sock], [], [], 0)[0]:
                return

    def _check(self, client: mqtt.Client, rc: MQTTErrorCode, what: str) -> None:
        if rc != mqtt.MQTT_ERR_SUCCESS and self._client is client:
            self._drop(f"{what}: {mqtt.error_string(rc)}")

    def _connect(self) -> None:
        s = self.settings
        client_id = s.client_id if s.consume else f"{s.client_id}-send-{random.getrandbits(32):x}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True, reconnect_on_failure=False)
        client.connect_timeout = s.connect_timeout
        if s.tls is not None:
            client.tls_set_context(s.tls.context())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        props = _properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = s.receive_maximum
        if s.consume:
            # clean_start False *and* an expiry: Mosquitto 2.0.11 saves to disk only sessions
            # begun with clean_start false, and a consumer's session is what holds the events
            # that arrive while it restarts.
            props.SessionExpiryInterval = s.session_expiry
        self._client = client
        self._connect_deadline = time.monotonic() + s.connect_timeout * 2
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive, clean_start=not s.consume,
                           properties=props)
            no_delay(client.socket())
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.stats.connect_failures += 1
            self._client = None
            self._retry_later(f"connect to {s.host}:{s.port} failed: {exc}")

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                    _props: Properties | None) -> None:
        if client is not self._client:
            return
        if reason.is_failure:
            self.stats.connect_failures += 1
            self._drop(f"broker refused the connection: {reason}")
            return
        s = self.settings
        self._failures = 0
        self._online = True
        self.stats.connects += 1
        qos1 = SubscribeOptions(qos=1)
        share = f"$share/{s.group}/"
        if s.consume:
            subscriptions = [
                (share + fleet_filter(s.prefix, "events"), qos1),
                (share + fleet_filter(s.prefix, "snapshots/+"), qos1),
                (share + fleet_filter(s.prefix, "cmd/result"), qos1),
                # Not shared: MQTT 5 sends no retained messages to shared subscriptions, and
                # the retained status is the one a fresh database needs. Low rate, so every
                # instance storing every status costs nothing.
                (fleet_filter(s.prefix, "status"), qos1),
            ]
        else:
            subscriptions = [(fleet_filter(s.prefix, "cmd/result"), qos1)]
        # Every time: a broker restored from an old save may have forgotten them.
        client.subscribe(subscriptions)
        log.info("connected to %s:%d", s.host, s.port)
        for outgoing in self._outbox.values():
            self._publish_command(client, outgoing)
        for gateway_id in self._acks:
            state = self._acks[gateway_id]
            if state.force or state.want > state.sent:
                self._ack_dirty.add(gateway_id)

    def _on_subscribe(self, client: mqtt.Client, _userdata: Any, _mid: int,
                      reasons: list[ReasonCode], _props: Properties | None) -> None:
        if client is not self._client:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            # Not fatal (another subscription may still work), but nothing to wait for either.
            self.stats.last_error = f"subscriptions refused: {refused}"
            log.error("broker refused subscriptions: %s", refused)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: ReasonCode, _props: Properties | None) -> None:
        if client is self._client:
            self._drop(f"disconnected: {reason}")

    def _drop(self, why: str) -> None:
        """Forget the connection: unacknowledged messages come again on the next one."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._online:
            self.stats.disconnects += 1
        self._online = False
        self._connected.clear()
        client.on_disconnect = None
        try:
            sock = client.socket()
            if sock is not None:
                sock.close()
        except OSError:
            pass
        # Acks whose PUBACK we did not see may be lost: publish them again.
        for gateway_id in set(self._ack_mids.values()):
            self._acks[gateway_id].force = True
            self._ack_dirty.add(gateway_id)
        self._ack_mids.clear()
        for outgoing in self._outbox.values():
            outgoing.mid = None
        if not self._stopping.is_set():
            self._retry_later(why)

    def _retry_later(self, why: str) -> None:
        s = self.settings
        self._failures += 1
        delay = min(s.backoff_cap, s.backoff_base * 2 ** min(self._failures, 16))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        self._next_attempt = time.monotonic() + delay
        self.stats.last_error = why
        log.warning("mqtt: %s; next attempt in %.1f s", why, delay)

    def _disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        client.disconnect()
        deadline = time.monotonic() + 2.0
        while client.want_write() and time.monotonic() < deadline:
            if client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                break
            time.sleep(0.005)
        self._client = None
        self._online = False
        self._connected.clear()
        sock = client.socket()
        if sock is not None:
            sock.close()

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if client is not self._client:
            return
        self.stats.received += 1
        prefix = self.settings.prefix
        gateway_id = gateway_of(prefix, msg.topic)
        leaf = msg.topic[len(prefix) + len(gateway_id) + 2:] if gateway_id else msg.topic
        acked = None
        props = msg.properties
        for key, value in (getattr(props, "UserProperty", None) or []):
            if key == "acked":
                acked = _floor(value)
                if acked is None:
                    log.warning("bad acked property %r from %s", value[:30], gateway_id)
        message = Incoming(msg.topic, gateway_id, leaf, bytes(msg.payload), time.time(), acked)
        self._inbox.put(_Received(message, client, msg.mid, msg.qos))

    def _on_publish(self, client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
                    _props: Properties | None) -> None:
        if client is not self._client:
            return
        gateway_id = self._ack_mids.pop(mid, None)
        if gateway_id is not None:
            if reason.is_failure:
                self.stats.last_error = f"ack to {gateway_id} refused: {reason}"
                log.error("broker refused our ack to %s: %s", gateway_id, reason)
            return
        for token, outgoing in list(self._outbox.items()):
            if outgoing.mid == mid:
                del self._outbox[token]
                outgoing.done.set_result(int(reason.value))
                return

    def _after_batch(self, acks: list[tuple[mqtt.Client, int, int]],
                     outcome: store.BatchOutcome) -> None:
        """The batch is committed: PUBACK its messages, and let the acks go out."""
        for client, mid, qos in acks:
            # A message of an earlier connection comes again on this one: acking its old mid
            # here could acknowledge an unrelated new message.
            if client is self._client:
                client.ack(mid, qos)
                self.stats.pubacks += 1
        for gateway_id, watermark in outcome.watermarks.items():
            state = self._acks.setdefault(gateway_id, _AckState())
            state.want = max(state.want, watermark)
            if gateway_id in outcome.resend_ack:
                state.force = True
            if state.force or state.want > state.sent:
                self._ack_dirty.add(gateway_id)

    def _flush_acks(self, now: float) -> None:
        client = self._client
        if client is None or not self._online:
            return
        for gateway_id in list(self._ack_dirty):
            state = self._acks[gateway_id]
            if now < state.sent_at + self.settings.ack_interval:
                continue
            self._ack_dirty.discard(gateway_id)
            if state.want <= 0:
                continue  # nothing stored yet: no ack says anything
            payload = json.dumps({"seq": state.want}).encode()
            info = client.publish(Topics(self.settings.prefix, gateway_id).ack, payload, qos=1)
            self._ack_mids[info.mid] = gateway_id
            state.sent, state.sent_at, state.force = state.want, now, False
            self.stats.acks_sent += 1

    def _queue_command(self, token: int, outgoing: _Outgoing) -> None:
        self._outbox[token] = outgoing
        if self._client is not None and self._online:
            self._publish_command(self._client, outgoing)

    def _publish_command(self, client: mqtt.Client, outgoing: _Outgoing) -> None:
        info = client.publish(outgoing.topic, outgoing.payload, qos=1,
                              properties=outgoing.properties)
        outgoing.mid = info.mid


def retire_session(settings: PlatformSettings, timeout: float = 10.0) -> None:
    """End an instance's session on the broker for good, and with it the events queued there.

    Mosquitto 2.0.11 keeps handing a shared subscription's messages to members that are
    offline, so an instance that is gone holds back its share (and every ack behind the first
    of them) until it returns or its session expires. Connecting once with clean_start and no
    expiry discards that session; the gateways send what it held again after their ack timeout.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                         protocol=mqtt.MQTTv5, reconnect_on_failure=False)
    if settings.tls is not None:
        client.tls_set_context(settings.tls.context())
    answers: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    client.connect(settings.host, settings.port, keepalive=settings.keepalive, clean_start=True)
    deadline = time.monotonic() + timeout
    while not answers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no CONNACK from {settings.host}:{settings.port}")
        client.loop(0.1)
    if answers[0].is_failure:
        raise ConnectionRefusedError(f"broker refused the connection: {answers[0]}")
    client.disconnect()
    client.loop(0.1)


def _floor(text: str) -> int | None:
    """The `acked` user property as a watermark, or None if it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _summary(cmd: str, args: dict[str, Any]) -> str:
    """What to keep of a command's arguments: never a registry's tenants."""
    if cmd == "registry.apply":
        kept = {"version": args.get("version"), "base_version": args.get("base_version"),
                "tenants": len(args.get("tenants") or []),
                "removed": len(args.get("removed") or [])}
    else:
        kept = args
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]
