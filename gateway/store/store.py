"""The Store: one SQLite database per gateway, one writer thread, one read connection per thread.

    store = Store.open(Path("/var/lib/rental-gateway"), "gw-440305-0042")
    entry = store.append_event({"type": "reader.online", "door": "main"})
    grant = store.card_lookup(12345678)      # on this thread's own read-only connection
    store.close()

Writes (methods that change something) block until committed and raise what went wrong;
reads never wait for the writer.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from web_security import passwords

from . import (
    alarms,
    audit,
    cards,
    entries,
    journal,
    registry,
    snapshots,
    summary,
    sync,
    tenants,
    upsert,
    users,
)
from .alarms import Alarm
from .audit import AuditCheck, AuditRecord
from .context import Context, epoch_ms, utc_now
from .crypto import Keys, load_or_create_key
from .db import Checkpointer, connect_reader, connect_writer, create_db_file
from .entries import EventPage, EventQuery
from .errors import StoreClosed, StoreError, ValidationError
from .journal import JournalEntry
from .models import Card, CardStatus, Tenant, TenantCreate, TenantStatus, TenantUpdate, User
from .registry import CardGrant, IssuedVisitorCode, VisitorCode, VisitorCodeResult
from .schema import apply_migrations
from .snapshots import SnapshotHold, SnapshotRef
from .summary import Registration
from .sync import RegistryApplied
from .tx import Transaction
from .upsert import BulkUpsertResult, Progress
from .writer import Writer, Yielding

T = TypeVar("T")

DB_FILE = "gateway.db"
KEY_FILE = "secret.key"
GATEWAY_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")  # SPEC 2
RETENTION_BATCH = 5000
# The door part's store (no upkeep) logs a transaction slower than this, split into its waits.
SLOW_WRITE_MS = 50.0


class _ReaderSlot:
    """Holds a thread's read connection; when the thread ends the slot and connection go too."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class Store:
    """The gateway's store; create with `Store.open(...)`, end with `close()`."""

    def __init__(
        self,
        data_dir: Path,
        gateway_id: str,
        *,
        key_file: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
        upkeep: bool = True,
        yielding: Yielding | None = None,
    ) -> None:
        # No I/O here: Store.open() does it, so constructing a Store in a test or a config
        # check never touches the disk.
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILE
        self.gateway_id = gateway_id
        self._key_file = key_file if key_file is not None else self.data_dir / KEY_FILE
        self._clock = clock
        self._upkeep = upkeep
        self._yielding = yielding
        self._checkpointer: Checkpointer | None = None
        self._ctx: Context | None = None
        self._writer: Writer | None = None
        self._schema_version = 0
        self._local = threading.local()
        self._slots: weakref.WeakSet[_ReaderSlot] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(
        cls,
        data_dir: Path,
        gateway_id: str,
        *,
        key_file: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
        upkeep: bool = True,
        yielding: Yielding | None = None,
    ) -> Store:
        """Create data_dir (0700), key and database as needed, migrate, start the writer.

        `upkeep=False` (the door part's store): the writer runs its callers' writes and nothing
        else, so a commit never waits behind upkeep. It does not index the journal when idle
        (the other parts' writers do) and does not checkpoint the WAL inside a commit; a
        thread with a connection of its own checkpoints it instead.

        `yielding`: how the writer gives way to the door part's commits (see Yielding).
        """
        store = cls(data_dir, gateway_id, key_file=key_file, clock=clock, upkeep=upkeep,
                    yielding=yielding)  # fmt: skip
        store._start()
        return store

    def _start(self) -> None:
        if not GATEWAY_ID.fullmatch(self.gateway_id):
            raise ValidationError("gateway_id", "must match ^[a-z0-9][a-z0-9-]{2,63}$")
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ctx = Context(self.gateway_id, Keys(load_or_create_key(self._key_file)), self._clock)
        create_db_file(self.db_path)
        writer = Writer(connect_writer(self.db_path, autocheckpoint=self._upkeep),
                        index=self._upkeep, yielding=self._yielding,
                        slow_ms=None if self._upkeep else SLOW_WRITE_MS)  # fmt: skip
        writer.start()
        try:
            self._schema_version = writer.submit(self._prepare)
        except BaseException:
            writer.close()
            raise
        self._writer = writer
        if not self._upkeep:
            self._checkpointer = Checkpointer(self.db_path)
            self._checkpointer.start()

    def _prepare(self, conn: sqlite3.Connection) -> int:
        version = apply_migrations(conn)
        row = conn.execute("SELECT value FROM meta WHERE key = 'gateway_id'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('gateway_id', ?)", (self.gateway_id,)
            )
        elif row[0] != self.gateway_id:
            # Another building's journal and registry: carrying on would send its pending
            # events under our id and open our doors for its tenants.
            raise StoreError(
                f"{self.db_path} belongs to gateway {row[0]!r}, not {self.gateway_id!r}"
            )
        return version

    def close(self) -> None:
        """Finish queued writes and close every connection; calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
        # Readers first: the last connection to close checkpoints and removes the WAL file,
        # and only the writer's connection is allowed to.
        for slot in slots:
            slot.conn.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Plumbing

    @property
    def ctx(self) -> Context:
        """Gateway id, keys and clock (after open)."""
        if self._ctx is None:
            raise StoreClosed("the store is not open; use Store.open()")
        return self._ctx

    def writable(self) -> bool:
        """False once closed, or while writes fail for a storage reason (disk full, I/O error)."""
        return self._writer is not None and not self._closed and self._writer.healthy()

    def schema_version(self) -> int:
        """How many schema migrations the database has (also PRAGMA user_version)."""
        return self._schema_version

    def reader(self) -> sqlite3.Connection:
        """The calling thread's read-only connection, opened on first use."""
        slot: _ReaderSlot | None = getattr(self._local, "slot", None)
        if slot is not None and not self._closed:
            return slot.conn
        if self._closed or self._writer is None:
            raise StoreClosed("the store is closed" if self._closed else "the store is not open")
        slot = _ReaderSlot(connect_reader(self.db_path))
        with self._lock:
            if self._closed:
                slot.conn.close()
                raise StoreClosed("the store is closed")
            self._slots.add(slot)
        self._local.slot = slot
        return slot.conn

    def _submit(self, fn: Callable[[sqlite3.Connection], T], /, *, lock: bool = True) -> T:
        if self._writer is None:
            raise StoreClosed("the store is not open; use Store.open()")
        return self._writer.submit(fn, lock=lock)

    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        """Run `fn(tx)` in the writer thread in one BEGIN IMMEDIATE transaction; return its result.

        It is committed before this returns; if `fn` raises, nothing it did is kept and the
        exception is raised here.

        >>> store.transaction(lambda tx: tx.append_event(ev).seq)   # doctest: +SKIP
        """
        ctx = self.ctx
        if self._writer is None:
            raise StoreClosed("the store is not open; use Store.open()")

        def run(conn: sqlite3.Connection) -> T:
            tx = Transaction(conn, ctx)
            try:
                return fn(tx)
            finally:
                tx.finish()

        return self._writer.submit(run)

    # Journal

    def append_event(
        self, event: Mapping[str, Any], *, alarm: str | None = None, capture: bool = False
    ) -> JournalEntry:
        """Journal one event and return it with its seq, committed; with `alarm`, raise that too.

        The caller gives `type`, optionally `ts` (RFC 3339 with offset; default now) and
        `event_id` (default a new UUID4), and the type's fields (SPEC 6). The journal adds
        `schema`, `gateway_id` and `seq`. The alarm, if named, commits with the event.

        With `capture`, the event (with `"snapshot": null, "snapshot_error": "interrupted"`)
        is held back from the uplink until `fill_snapshot(seq, ...)` or `release_capture(seq)`.

        >>> store.append_event({"type": "door.forced", "door": "main"}, alarm="door_forced").seq
        42                                                        # doctest: +SKIP
        """
        if not capture:
            return self.transaction(lambda tx: tx.append_event(event, alarm=alarm))

        def append(tx: Transaction) -> JournalEntry:
            entry = tx.append_event(event, alarm=alarm)
            snapshots.hold_capture(tx.conn, entry.seq)
            return entry

        return self.transaction(append)

    def fill_snapshot(
        self, seq: int, snapshot: dict[str, Any] | None, error: str | None = None
    ) -> JournalEntry | None:
        """Record the capture's outcome in held event `seq` and let it go up.

        Returns the final entry; None when the seq is not held (or another caller, such as
        the capture's deadline, filled it first).
        """
        keys = self.ctx.keys
        return self.transaction(
            lambda tx: snapshots.fill_snapshot(tx.conn, keys, seq, snapshot, error)
        )

    def release_capture(self, seq: int) -> None:
        """Let held event `seq` go up as journaled ("interrupted")."""
        self.transaction(lambda tx: snapshots.claim_capture(tx.conn, seq))

    def release_all_captures(self) -> int:
        """Let every held event go up as journaled: at start, nobody is capturing them."""
        return self.transaction(lambda tx: snapshots.release_all_captures(tx.conn))

    def captures_running(self) -> int:
        """How many events wait for their snapshot."""
        return len(self.held_captures())

    def held_captures(self) -> list[int]:
        """The seqs waiting for their snapshot, lowest first."""
        return snapshots.held_captures(self.reader())

    def pending_events(self, after_seq: int | None = None, limit: int = 500) -> list[JournalEntry]:
        """Events not yet acknowledged (seq above the watermark and `after_seq`), in seq order.

        Stops before the first event whose snapshot is still being captured.
        """
        after = max(after_seq or 0, self.acked_seq())
        return journal.pending(self.reader(), self.ctx.keys, after, limit)

    def events_after(self, after_seq: int, limit: int = 500) -> list[JournalEntry]:
        """Events above `after_seq` with their final bodies, in seq order (acknowledged or not;
        stops before the first event whose snapshot is still being captured)."""
        return journal.events_after(self.reader(), self.ctx.keys, after_seq, limit)

    def last_seq(self) -> int:
        """The highest seq journaled so far (0 before the first)."""
        return journal.last_seq(self.reader())

    def data_version(self) -> int:
        """Changes whenever another connection (another process or this one's writer) commits:
        a cheap way to poll for news (SQLite's PRAGMA data_version)."""
        return int(self.reader().execute("PRAGMA data_version").fetchone()[0])

    def pending_bodies(self, after_seq: int = 0, limit: int = 500) -> list[tuple[int, bytes]]:
        """`pending_events` as (seq, exact body JSON bytes): what the uplink publishes."""
        after = max(after_seq, self.acked_seq())
        return journal.pending_bodies(self.reader(), self.ctx.keys, after, limit)

    def acknowledge(self, upto_seq: int) -> int:
        """The central platform stored every seq ≤ `upto_seq`; return the new watermark.

        The watermark moves at once for `acked_seq()` and `pending_events()`, and is saved
        with a later transaction (within a few seconds, and at close) instead of a commit of
        its own per ack: a power cut may forget the last seconds of acks, which only means
        those events are sent again, and the city dedupes on seq.
        """
        journal.check_ack(upto_seq)
        if self._writer is None:
            raise StoreClosed("the store is not open; use Store.open()")
        current = self.acked_seq()
        target = min(upto_seq, journal.last_seq(self.reader()))  # never past the last seq
        if target <= current:
            return current  # never backwards
        return self._writer.defer(journal.ACKED_KEY, target, journal.save_acked, max)

    def queue_depth(self) -> int:
        """Events journaled and not yet acknowledged by the city."""
        row = self.reader().execute(
            "SELECT count(*) FROM events WHERE seq > ?", (self.acked_seq(),)
        ).fetchone()
        return int(row[0])

    def acked_seq(self) -> int:
        """The acknowledgement watermark (also an ack not saved yet)."""
        saved = journal.acked_seq(self.reader())
        unsaved = None if self._writer is None else self._writer.deferred(journal.ACKED_KEY)
        return saved if unsaved is None else max(saved, unsaved)

    def delete_events_before(self, before: datetime) -> int:
        """Retention: delete acknowledged events older than `before`; return how many.

        Works in batches, one transaction each, so the door path's writes are never held up
        for long behind a large deletion. An ack not saved yet is saved with the first.
        """
        writer = self._writer
        if writer is None:
            raise StoreClosed("the store is not open; use Store.open()")

        def delete(tx: Transaction) -> int:
            writer.write_deferred(tx.conn)
            return journal.delete_acked_before(tx.conn, before, RETENTION_BATCH)

        total = 0
        while True:
            deleted = self.transaction(delete)
            total += deleted
            if deleted < RETENTION_BATCH:
                return total

    # Police audit log

    def audit(
        self,
        *,
        username: str,
        role: str,
        remote: str | None,
        action: str,
        purpose: str | None,
        params: dict[str, Any],
        records: int,
    ) -> AuditRecord:
        """Append one row to the hash-chained audit log (committed before this returns)."""
        keys, now = self.ctx.keys, self.ctx.now_text()
        return self.transaction(lambda tx: audit.append(
            tx.conn, keys, ts=now, username=username, role=role, remote=remote, action=action,
            purpose=purpose, params=params, records=records,
        ))  # fmt: skip

    def audit_page(self, *, before: int | None = None, limit: int = 100) -> list[AuditRecord]:
        """Audit rows newest first, below seq `before`."""
        return audit.page(self.reader(), before=before, limit=limit)

    def verify_audit(self) -> AuditCheck:
        """Walk the audit chain; the first row that does not verify, if any."""
        return audit.verify(self.reader(), self.ctx.keys)

    # Snapshots

    def next_snapshot(self, after_seq: int, upto_seq: int) -> SnapshotRef | None:
        """The first event with a snapshot in (after_seq, upto_seq], by seq."""
        return snapshots.next_snapshot(self.reader(), after_seq, upto_seq)

    def snapshot_sent_seq(self) -> int:
        """The snapshot outbox's watermark (also one not saved yet)."""
        saved = snapshots.sent_seq(self.reader())
        unsaved = None if self._writer is None else self._writer.deferred(snapshots.SENT_KEY)
        return saved if unsaved is None else max(saved, unsaved)

    def snapshots_sent(self, upto_seq: int) -> None:
        """Every snapshot up to `upto_seq` went up; saved with a later write, like acks."""
        if self._writer is None:
            raise StoreClosed("the store is not open; use Store.open()")
        if upto_seq > self.snapshot_sent_seq():
            self._writer.defer(snapshots.SENT_KEY, upto_seq, snapshots.save_sent, max)

    def hold_snapshot(self, event_id: str, purpose: str, held_by: str) -> None:
        """Keep this event's snapshot past retention, for the case `purpose`."""
        now = self.ctx.now_text()
        self.transaction(lambda tx: snapshots.hold(tx.conn, event_id, purpose, held_by, now))

    def release_snapshot(self, event_id: str) -> bool:
        """Lift a police hold; False if there was none."""
        return self.transaction(lambda tx: snapshots.release(tx.conn, event_id))

    def snapshot_holds(self) -> list[SnapshotHold]:
        """Every police hold, oldest first."""
        return snapshots.holds(self.reader())

    def registration(self, today: date) -> Registration:
        """Tenants and rooms for the information collection rate."""
        return summary.registration(self.reader(), today)

    def entries_since(self, since: datetime) -> dict[str, int]:
        """Access events since `since` by result."""
        return summary.entries_since(self.reader(), epoch_ms(since))

    def find_event(self, event_id: str) -> JournalEntry | None:
        """The journaled event with this event_id, or None."""
        return journal.find_event(self.reader(), self.ctx.keys, event_id)

    def query_events(self, query: EventQuery) -> EventPage:
        """Search the journal by time, door, room, tenant, card, result; newest first.

        The newest events, not yet in the block index, are found as well (entries.py).
        """
        return entries.query_events(self.reader(), self.ctx.keys, query)

    def list_alarms(self, *, open_only: bool = True, limit: int = 100) -> list[Alarm]:
        """Alarms newest first."""
        return alarms.list_alarms(self.reader(), open_only=open_only, limit=limit)

    def get_alarm(self, alarm_id: int) -> Alarm:
        """An alarm with its event's card, room and tenant, or NotFound."""
        return alarms.get_alarm(self.reader(), alarm_id)

    def acknowledge_alarm(self, alarm_id: int, username: str) -> Alarm:
        """Record that `username` has seen the alarm."""
        now = self.ctx.now_text()
        return self.transaction(
            lambda tx: alarms.acknowledge_alarm(tx.conn, alarm_id, username, now)
        )

    def lockdown(self) -> bool:
        """Whether the building is in lockdown (persisted across restarts)."""
        return bool(self.get_meta("lockdown"))

    def set_lockdown(self, on: bool) -> None:
        """Enter or leave lockdown."""
        self.transaction(lambda tx: tx.set_meta("lockdown", on))

    def get_meta(self, key: str) -> Any:
        """A gateway setting from the meta table, or None."""
        row = self.reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # Door path

    def card_lookup(self, number: int) -> CardGrant | None:
        """The card and its holder for the access decision, or None if unknown."""
        return registry.card_lookup(self.reader(), number)

    def verify_pin(self, card_number: int, pin: str) -> bool:
        """Whether `pin` is the card's PIN (False when it has none)."""
        return registry.verify_pin(self.reader(), self.ctx.keys, card_number, pin)

    def use_visitor_code(
        self, code: str, door: str, now: datetime | None = None
    ) -> VisitorCodeResult:
        """Check and count one use of a visitor code at `door`, atomically (`now`: the clock)."""
        return self.transaction(lambda tx: tx.use_visitor_code(code, door, now))

    def create_visitor_code(
        self,
        *,
        door: str | None,
        valid_until: datetime,
        max_uses: int,
        created_by: str,
        room: str | None = None,
        note: str = "",
    ) -> IssuedVisitorCode:
        """Create a numeric visitor code for one door (or every door with None).

        `room` is the room visited, reported back on each use for the event; `note` is free text.
        """
        return self.transaction(
            lambda tx: registry.create_visitor_code(
                tx.conn, self.ctx, door=door, valid_until=valid_until, max_uses=max_uses,
                created_by=created_by, room=room, note=note,
            )
        )  # fmt: skip

    def list_visitor_codes(self, live_at: datetime | None = None) -> list[VisitorCode]:
        """Visitor codes newest first; with `live_at`, only those still usable then."""
        return registry.list_visitor_codes(self.reader(), live_at)

    # Tenants and cards

    def add_tenant(self, data: TenantCreate) -> Tenant:
        """Register a tenant (journals `tenant.changed` when the source is local)."""
        return self.transaction(lambda tx: tx.get_tenant(tx.add_tenant(data)))

    def upsert_tenants(
        self,
        records: Sequence[TenantCreate],
        *,
        check_only: bool = False,
        progress: Progress | None = None,
        batch: int | None = None,
    ) -> BulkUpsertResult:
        """Add or update many tenants, all or none, holding the write lock only briefly.

        Each record does what `Transaction.upsert_tenant` does, in order. Validation, keyed
        hashes, matching, card conflicts and sealing happen here in the caller's thread, from
        a read snapshot; the writer's transaction only runs the prepared inserts and updates,
        so the door path's writes wait a fraction of the whole. UpsertRejected lists every
        record that cannot be applied. `check_only` plans and reports without writing.
        `progress(stage, done, total)` is called now and then ("matching", "sealing",
        "writing"; the last from the writer thread).

        With `batch`, every record is checked first (one bad record still writes nothing),
        then they are written `batch` at a time, each batch its own transaction: the door
        part's commits wait for one batch at most, not for the whole file. A crash between
        batches leaves the first ones written; importing the same records again completes it.
        """
        with self._bulk_lock:  # one at a time: they share the writer's staging tables
            upsert_some = partial(upsert.upsert_many, self.ctx, self.reader, self._submit,
                                  progress=progress)  # fmt: skip
            if check_only or batch is None or len(records) <= batch:
                return upsert_some(records, check_only=check_only)
            upsert_some(records, check_only=True)
            done = [upsert_some(records[i : i + batch]) for i in range(0, len(records), batch)]
            return BulkUpsertResult(
                added=sum(r.added for r in done),
                updated=sum(r.updated for r in done),
                cards_added=sum(r.cards_added for r in done),
                journaled=sum(r.journaled for r in done),
                lock_seconds=max(r.lock_seconds for r in done),
                attempts=max(r.attempts for r in done),
                unchanged=sum(r.unchanged for r in done),
            )

    def update_tenant(self, tenant_id: str, changes: TenantUpdate) -> Tenant:
        """Change some of a tenant's fields."""

        def update(tx: Transaction) -> Tenant:
            tx.update_tenant(tenant_id, changes)
            return tx.get_tenant(tenant_id)

        return self.transaction(update)

    def set_tenant_status(self, tenant_id: str, status: TenantStatus) -> Tenant:
        """Suspend, reactivate or move out a tenant."""

        def change_status(tx: Transaction) -> Tenant:
            tx.set_tenant_status(tenant_id, status)
            return tx.get_tenant(tenant_id)

        return self.transaction(change_status)

    def move_out(self, tenant_id: str) -> Tenant:
        """Mark a tenant moved out and revoke their active cards; the record stays."""
        return self.set_tenant_status(tenant_id, "moved_out")

    def remove_tenant(self, tenant_id: str) -> None:
        """Delete a tenant and their cards; their past events stay in the journal."""
        self.transaction(lambda tx: tx.remove_tenant(tenant_id))

    def has_room(self, room: str) -> bool:
        """Whether the building has this room (a tenant was ever registered in it)."""
        found = self.reader().execute("SELECT 1 FROM rooms WHERE room = ?", (room,)).fetchone()
        return found is not None

    def get_tenant(self, tenant_id: str) -> Tenant:
        """A tenant (masked), or NotFound."""
        return tenants.get_tenant(self.reader(), self.ctx, tenant_id)

    def find_tenant(self, id_number: str) -> Tenant | None:
        """The tenant with this ID number, found through its keyed hash."""
        return tenants.find_by_id_number(self.reader(), self.ctx, id_number)

    def search_tenants(
        self,
        *,
        name: str | None = None,
        room: str | None = None,
        status: TenantStatus | None = None,
        phone: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Tenant]:
        """Tenants by name substring, room, status or exact phone, ordered by room and name."""
        return tenants.search(
            self.reader(), self.ctx, name=name, room=room, status=status, phone=phone,
            limit=limit, offset=offset,
        )  # fmt: skip

    def reveal_id_number(self, tenant_id: str) -> str:
        """The plaintext ID number; callers audit who asked and why."""
        return tenants.reveal(self.reader(), self.ctx, tenant_id)[0]

    def reveal_phone(self, tenant_id: str) -> str:
        """The plaintext phone number; callers audit who asked and why."""
        return tenants.reveal(self.reader(), self.ctx, tenant_id)[1]

    def add_card(self, tenant_id: str, number: int, pin: str | None = None) -> Card:
        """Give a card to a tenant; Conflict when another tenant holds it."""
        return self.transaction(lambda tx: tx.add_card(tenant_id, number, pin))

    def set_card_status(self, number: int, status: CardStatus) -> Card:
        """Mark a card lost, revoked, or active again."""
        return self.transaction(lambda tx: tx.set_card_status(number, status))

    def set_card_pin(self, number: int, pin: str | None) -> Card:
        """Set or clear a card's PIN."""
        return self.transaction(lambda tx: tx.set_card_pin(number, pin))

    def get_card(self, number: int) -> Card:
        """A card, or NotFound."""
        return cards.get_card(self.reader(), number)

    # Users

    def add_user(
        self, username: str, role: str, password: str, *, must_change: bool = False
    ) -> User:
        """Create a web user; the password must pass the policy in web_security.passwords.

        With `must_change` the password is a one-time password: the user must choose a new
        one before doing anything else.
        """
        checked_role = users.check_role(role)
        users.check_username(username)
        hashed = _hash_new_password(password, username)
        return self.transaction(lambda tx: users.insert_user(
            tx.conn, self.ctx, username, checked_role, hashed, must_change))  # fmt: skip

    def verify_user(self, username: str, password: str) -> User | None:
        """The user if the password is right and the account enabled, else None."""
        stored = users.stored_hash(self.reader(), username)
        outcome = passwords.verify_password(stored or passwords.DUMMY_HASH, password)
        if stored is None or not outcome.ok:
            return None
        if outcome.new_hash is not None:
            new_hash = outcome.new_hash
            self.transaction(lambda tx: users.replace_hash(tx.conn, username, stored, new_hash))
        user = users.get_user(self.reader(), username)
        return None if user.disabled else user

    def has_users(self) -> bool:
        """Whether any web user exists (else the first-use setup code may create one)."""
        return bool(self.reader().execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0])

    def get_user(self, username: str) -> User:
        """A user, or NotFound."""
        return users.get_user(self.reader(), username)

    def set_password(self, username: str, password: str) -> None:
        """Replace a user's password."""
        hashed = _hash_new_password(password, username)
        self.transaction(lambda tx: users.replace_hash(tx.conn, username, None, hashed))

    def set_user_disabled(self, username: str, disabled: bool) -> User:
        """Disable or re-enable a login."""
        return self.transaction(lambda tx: users.set_disabled(tx.conn, username, disabled))

    # City downlink (SPEC 7)

    def claim_command_counter(self, counter: int) -> bool:
        """Accept a signed command's counter if it is above the last accepted one.

        True: it is now the last accepted one, committed (synchronous=FULL) before this
        returns, so the command may run. False: a replay or a reordered command, nothing
        written.
        """
        checked = sync.check_counter(counter)
        return self.transaction(lambda tx: sync.claim_counter(tx, checked))

    def command_counter(self) -> int:
        """The last accepted command counter (0 before the first)."""
        return sync.command_counter(self.reader())

    def readers_offline(self) -> list[str]:
        """The doors whose reader's last word in the journal is `reader.offline`."""
        rows = self.reader().execute(
            "SELECT door, type FROM events AS e WHERE type IN ('reader.online', 'reader.offline')"
            " AND seq = (SELECT max(seq) FROM events WHERE door = e.door"
            " AND type IN ('reader.online', 'reader.offline')) ORDER BY door"
        ).fetchall()
        return [str(door) for door, kind in rows if kind == "reader.offline"]

    def registry_version(self) -> int | None:
        """The city registry version applied last; None (null in `P/status`) before any."""
        return sync.registry_version(self.reader())

    def apply_registry(
        self,
        version: int,
        base_version: int | None,
        tenants: Sequence[Mapping[str, Any]],
        removed: Sequence[str] = (),
    ) -> RegistryApplied:
        """Apply the city's `registry.apply`: a full set (`base_version` None) or a delta.

        All or nothing, holding the write lock only for the final writes (see sync.py).
        Raises VersionGap (the delta is not for this registry's version), VersionNotNewer
        (`version` not above it: already_applied or stale_version) or RegistryInvalid (every
        bad record); each has `.error`, the word for the command result.
        """
        with self._bulk_lock:  # bulk registry writes one at a time
            return sync.apply_registry(
                self.ctx, self.reader, self.transaction, self.acked_seq, version, base_version,
                tenants, removed,
            )  # fmt: skip


def _hash_new_password(password: str, username: str) -> str:
    try:
        passwords.check_policy(password, username)
    except passwords.WeakPasswordError as exc:
        raise ValidationError("password", str(exc), code=exc.code, params=exc.params) from None
    # argon2 runs here, in the caller's thread, not in the writer (see users.py).
    return passwords.hash_password(password)
