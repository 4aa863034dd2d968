"""Tenant upserts, one or thousands: prepared outside the write lock, applied in a short one.

`gateway tenants import` runs in its own process beside the service, and every door event
waits for SQLite's write lock while the import holds it. So the lock is taken last:

1. plan (caller's thread, read connection, one snapshot): validate and normalise, keyed
   hashes, match registered tenants and cards, decide every insert, update, conflict and
   `tenant.changed` event;
2. seal and stage, chunk by chunk: the caller's thread seals ID numbers, phones and event
   bodies, the writer thread binds them into TEMP tables (plain BEGIN: only TEMP tables, in
   memory, are written, so nobody waits);
3. apply (BEGIN IMMEDIATE): verify the plan still holds, then one INSERT ... SELECT or
   UPDATE ... FROM per table, and COMMIT.

A plan is only valid for the registry it was made from, so step 3 first checks, in three
statements over JSON arrays, that every registered tenant the plan writes or announces, and
every card of theirs, is exactly as planned from. A new tenant or card is a plain INSERT, so
one that appeared meanwhile trips the UNIQUE ID hash or the card's primary key, and a card is
re-issued only while still revoked and held by the same tenant. Any of these raises
`StalePlan`: nothing is kept, and `upsert_many` plans again from a fresh snapshot (after
PLAN_ATTEMPTS, it plans inside the transaction, where nothing can move). Rows the plan neither
writes nor announces may change meanwhile: the import then simply came first.

Only the seq of the journaled events may move without spoiling the plan (the service appends
door events all the time). Bodies are encoded for the next seq when staged; if a door event
took it since, the transaction seals them again (a string join and an AES-GCM call each) and
rewrites those columns of the staged rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from . import journal, tenants
from .context import Context
from .db import read_snapshot
from .errors import Conflict, StoreClosed, StoreError, ValidationError
from .journal import PreparedEvent
from .models import TenantCreate, TenantStatus, UpsertResult
from .tenants import Person

T = TypeVar("T")

# progress(stage, done, total): "matching", "sealing", "writing", in that order;
# Store.upsert_tenants reports all of them in records.
Progress = Callable[[str, int, int], None]

_CHUNK = 500  # bound parameters per IN (...) query
_TICK = 1000  # records between progress calls

_INSERT_ROOM = "INSERT OR IGNORE INTO rooms (room, created) VALUES (?, ?)"
_INSERT_CARD = (
    "INSERT INTO cards (number, tenant_id, status, created, updated) VALUES (?, ?, 'active', ?, ?)"
)
_REISSUE_CARD = (
    "UPDATE cards SET tenant_id = ?, status = 'active', pin_hash = NULL, updated = ?"
    " WHERE number = ? AND tenant_id = ? AND status = 'revoked'"
)
# Tenants as planned from: same id, fields, status and ID/phone hashes (hex in the JSON).
_SAME_TENANTS = (
    "SELECT count(*) FROM json_each(?) AS j JOIN tenants AS t ON t.id = j.value ->> 0"
    " WHERE t.name = j.value ->> 1 AND t.room = j.value ->> 2"
    " AND t.valid_from = j.value ->> 3 AND t.valid_until = j.value ->> 4"
    " AND t.status = j.value ->> 5 AND hex(t.phone_hash) = j.value ->> 6"
    " AND hex(t.id_number_hash) = j.value ->> 7"
)
# Their cards as planned from: the same count, and each with the same holder and status.
_CARDS_HELD = "SELECT count(*) FROM cards WHERE tenant_id IN (SELECT value FROM json_each(?))"
_SAME_CARDS = (
    "SELECT count(*) FROM json_each(?) AS j JOIN cards AS c ON c.number = j.value ->> 0"
    " WHERE c.tenant_id = j.value ->> 1 AND c.status = j.value ->> 2"
)
_UPDATE_PERSON = (
    "UPDATE tenants SET name = ?, id_number_sealed = ?, id_number_hash = ?, phone_sealed = ?,"
    " phone_hash = ?, room = ?, valid_from = ?, valid_until = ?, updated = ? WHERE id = ?"
)
_UPDATE_STATUS = "UPDATE tenants SET status = ?, updated = ? WHERE id = ?"

# Staging: TEMP tables on the writer's connection (in memory: PRAGMA temp_store), filled
# before the write lock is taken and copied from inside it.
_STAGE_CHUNK = 2000  # rows per staging job: the writer serves others in between
_STAGE_TABLES = ("upsert_tenants", "upsert_people", "upsert_cards", "upsert_events")
_CREATE_STAGE = (
    "CREATE TEMP TABLE upsert_tenants (id, name, id_number_sealed, id_number_hash,"
    " phone_sealed, phone_hash, room, valid_from, valid_until, status, source, created, updated)",
    "CREATE TEMP TABLE upsert_people (name, id_number_sealed, id_number_hash, phone_sealed,"
    " phone_hash, room, valid_from, valid_until, updated, id)",
    "CREATE TEMP TABLE upsert_cards (number, tenant_id)",
    "CREATE TEMP TABLE upsert_events (seq, event_id, ts, ts_ms, type, door, card, tenant_id,"
    " room, result, reason, body, sealed_body)",
)
_STAGE_TENANT = "INSERT INTO temp.upsert_tenants VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
_STAGE_PERSON = "INSERT INTO temp.upsert_people VALUES (?,?,?,?,?,?,?,?,?,?)"
_STAGE_CARD = "INSERT INTO temp.upsert_cards VALUES (?,?)"
_STAGE_EVENT = "INSERT INTO temp.upsert_events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
_COPY_TENANTS = (
    "INSERT INTO tenants (id, name, id_number_sealed, id_number_hash, phone_sealed, phone_hash,"
    " room, valid_from, valid_until, status, source, created, updated)"
    " SELECT * FROM temp.upsert_tenants ORDER BY rowid"
)
_COPY_PEOPLE = (
    "UPDATE tenants SET name = s.name, id_number_sealed = s.id_number_sealed,"
    " id_number_hash = s.id_number_hash, phone_sealed = s.phone_sealed,"
    " phone_hash = s.phone_hash, room = s.room, valid_from = s.valid_from,"
    " valid_until = s.valid_until, updated = s.updated"
    " FROM temp.upsert_people AS s WHERE tenants.id = s.id"
)
_COPY_CARDS = (
    "INSERT INTO cards (number, tenant_id, status, created, updated)"
    " SELECT number, tenant_id, 'active', ?, ? FROM temp.upsert_cards ORDER BY number"
)
_RESEQ_EVENT = "UPDATE temp.upsert_events SET seq = ?, body = ?, sealed_body = ? WHERE rowid = ?"
_COPY_EVENTS = (
    "INSERT INTO events (seq, event_id, ts, ts_ms, type, door, card, tenant_id, room, result,"
    " reason, body, sealed_body) SELECT * FROM temp.upsert_events ORDER BY seq"
)


# Plans made outside the transaction before planning inside it instead (holding the lock).
PLAN_ATTEMPTS = 3


class StalePlan(StoreError):
    """Tenants or cards changed between planning and applying; plan again."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why record number `index` (0-based, in the order given) cannot be applied."""

    index: int
    error: Conflict | ValidationError


class UpsertRejected(StoreError):
    """Some records cannot be applied; `problems` has every one. Nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"record {p.index + 1}: {p.error}" for p in problems))


@dataclass(frozen=True, slots=True)
class BulkUpsertResult:
    """What `Store.upsert_tenants` did (or, checking only, would do)."""

    added: int
    updated: int  # records that matched a registered person, whether or not anything changed
    cards_added: int
    journaled: int  # tenant.changed events: one per tenant added or changed
    lock_seconds: float  # BEGIN IMMEDIATE to COMMIT done (0: nothing written): an upper bound,
    # as COMMIT includes SQLite's automatic checkpoint, which runs once the lock is free
    attempts: int = 1  # plans made; more than 1 when another writer changed the registry
    unchanged: int = 0  # of `updated`: registered already, exactly as listed


@dataclass(frozen=True, slots=True)
class _Stored:
    """An existing tenant as the snapshot has it: what an upsert compares against."""

    id: str
    id_number_hash: bytes
    name: str
    phone_hash: bytes
    room: str
    valid_from: str
    valid_until: str
    status: TenantStatus


_Change = tuple[tenants.Change, str, Person, str, tuple[tuple[int, str], ...]]


@dataclass(slots=True)
class _NewTenant:
    tenant_id: str
    person: Person
    status: TenantStatus
    source: str


@dataclass(slots=True)
class Plan:
    """The writes of an upsert batch, ready for `apply_plan`; `problems` if it cannot be."""

    first_seq: int
    now: str
    problems: list[Problem] = field(default_factory=list)
    results: list[UpsertResult] = field(default_factory=list)
    unchanged: int = 0
    rooms: dict[str, None] = field(default_factory=dict)
    new_tenants: list[_NewTenant] = field(default_factory=list)
    changed_people: list[tuple[str, Person]] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    card_inserts: list[tuple[int, str]] = field(default_factory=list)
    card_reissues: list[tuple[int, str, str]] = field(default_factory=list)  # number, new, old
    # The tenant.changed events, compact: (change, tenant id, person, status, cards).
    changes: list[_Change] = field(default_factory=list, repr=False)
    # Registered tenants the plan writes or announces, and their cards, as the snapshot had
    # them: apply_plan checks they are unchanged.
    touched: dict[str, _Stored] = field(default_factory=dict, repr=False)
    touched_cards: list[tuple[int, str, str]] = field(default_factory=list, repr=False)
    checks: tuple[str, str, str] = ("[]", "[]", "[]")  # the JSON parameters of _verify
    # The events encoded (by _seal or stage_plan) and, unstaged only (_seal), every
    # statement's parameters, the events' for seqs from first_seq.
    tenant_rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    person_rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    events: list[PreparedEvent] = field(default_factory=list, repr=False)
    event_rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)

    @property
    def writes(self) -> int:
        """Rows the plan writes (tenants, cards, events); 0 when everything is up to date."""
        return (
            len(self.new_tenants) + len(self.changed_people) + len(self.reactivated)
            + len(self.card_inserts) + len(self.card_reissues) + len(self.changes)
        )  # fmt: skip


def plan_upserts(
    conn: sqlite3.Connection,
    ctx: Context,
    records: Sequence[TenantCreate],
    progress: Progress | None = None,
    *,
    seal: bool = True,
) -> Plan:
    """Match `records` against the registry and prepare every write; nothing is written.

    Reads one consistent snapshot through `conn` (a read connection, or the writer's inside
    its transaction). Each record is the one-tenant upsert of `Transaction.upsert_tenant`,
    applied in order: a person already registered (same keyed ID hash) is updated and gains
    the listed cards, a moved-out one becomes active again, a card held by another tenant is a
    Conflict unless it was revoked. Problems are collected for every record, not just the first.
    Without `seal` nothing is encrypted yet: `stage_plan` does it chunk by chunk, or the plan
    only tells what would happen (checking only).
    """
    report = progress or _ignore
    checked, problems = _check(ctx, records)
    with read_snapshot(conn):
        plan = Plan(journal.next_seq(conn), ctx.now_text(), problems)
        stored = _stored_tenants(conn, [c[3] for c in checked])
        listed = _cards(conn, [n for c in checked for n in c[2]])
        held = _cards_of(conn, [t.id for t in stored.values()])
    _decide(plan, ctx, checked, stored, listed, {t: dict(c) for t, c in held.items()}, report)
    plan.touched_cards = [
        (number, tenant_id, status)
        for tenant_id in plan.touched
        for number, status in held[tenant_id].items()
    ]
    plan.checks = _checks(plan)
    if seal and not plan.problems:
        _seal(plan, ctx, report)
    plan.problems.sort(key=lambda problem: problem.index)
    return plan


def apply_plan(
    conn: sqlite3.Connection,
    ctx: Context,
    plan: Plan,
    progress: Progress | None = None,
    *,
    staged: bool = False,
) -> None:
    """Write the plan in the writer's transaction; StalePlan if the registry moved meanwhile.

    `staged`: the plan's rows are in the TEMP tables of `stage_plan` and are copied from there
    in C, one statement per table; otherwise they are bound here, row by row.
    """
    if plan.problems:
        raise StoreError("a plan with problems cannot be applied")
    report = progress or _ignore
    total, now = plan.writes, plan.now
    report("writing", 0, total)
    _verify(conn, plan)
    conn.executemany(_INSERT_ROOM, ((room, now) for room in plan.rooms))
    try:
        # Plain INSERTs: a tenant (UNIQUE ID hash) or card (primary key) that appeared
        # meanwhile fails the statement instead of being skipped.
        if staged:
            conn.execute(_COPY_TENANTS)
            people = conn.execute(_COPY_PEOPLE)
        else:
            conn.executemany(tenants.INSERT_TENANT, plan.tenant_rows)
            people = conn.executemany(_UPDATE_PERSON, plan.person_rows)
        _expect(people, len(plan.changed_people))
        reactivate = [("active", now, tenant_id) for tenant_id in plan.reactivated]
        _expect(conn.executemany(_UPDATE_STATUS, reactivate), len(reactivate))
        report("writing", len(plan.new_tenants) + len(plan.changed_people), total)
        if staged:
            conn.execute(_COPY_CARDS, (now, now))
        else:
            inserts = ((number, tenant_id, now, now) for number, tenant_id in plan.card_inserts)
            conn.executemany(_INSERT_CARD, inserts)
    except sqlite3.IntegrityError as exc:
        raise StalePlan(f"the registry changed since the plan was made ({exc})") from exc
    reissues = [(new, now, number, old) for number, new, old in plan.card_reissues]
    _expect(conn.executemany(_REISSUE_CARD, reissues), len(reissues))
    report("writing", total - len(plan.changes), total)
    if staged:
        seq = journal.next_seq(conn)
        if seq != plan.first_seq:
            # Door events took seqs since the bodies were staged: seal them again for the
            # seqs they get, and rewrite only those columns of the staged rows.
            bodies = (
                (seq + n, *event.body(ctx, seq + n), n + 1) for n, event in enumerate(plan.events)
            )
            conn.executemany(_RESEQ_EVENT, bodies)
        conn.execute(_COPY_EVENTS)
    else:
        journal.append_prepared(conn, ctx, plan.events, plan.event_rows, plan.first_seq)
    report("writing", total, total)


def stage_plan(
    submit: Submit, ctx: Context, plan: Plan, seq: Callable[[], int], report: Progress
) -> None:
    """Seal the plan's rows and bind them into TEMP tables of the writer, without the lock.

    Chunk by chunk: the caller's thread seals one, the writer binds it (binding tens of
    thousands of rows is about half the cost of inserting them, and here it costs the doors
    nothing), and no more than one chunk of sealed rows is in memory at a time. The locked
    transaction is then left with table-to-table copies. `seq()` gives the next event seq now.
    """
    submit(_create_stage, lock=False)
    now = plan.now
    total = len(plan.new_tenants) + len(plan.changed_people) + len(plan.changes)
    done = 0

    def put(sql: str, rows: list[tuple[Any, ...]], sealed: int) -> None:
        nonlocal done
        submit(partial(_stage_rows, sql, rows), lock=False)
        done += sealed
        report("sealing", done, total)

    report("sealing", done, total)
    for chunk in _chunks(plan.new_tenants):
        put(_STAGE_TENANT, [_tenant_row(ctx, now, new) for new in chunk], len(chunk))
    for changed in _chunks(plan.changed_people):
        put(_STAGE_PERSON, [_person_row(ctx, now, *c) for c in changed], len(changed))
    for cards in _chunks(sorted(plan.card_inserts)):
        put(_STAGE_CARD, list(cards), 0)
    # Events last, encoded for the next seq as of now: the fewer door events come between
    # here and the transaction, the likelier the staged bodies are used as they are.
    plan.first_seq = seq()
    plan.events = []
    for changes in _chunks(plan.changes):
        events = [_prepared(ctx, change) for change in changes]
        first = plan.first_seq + len(plan.events)
        plan.events += events
        put(
            _STAGE_EVENT, [event.row(ctx, first + n) for n, event in enumerate(events)], len(events)
        )


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _STAGE_CHUNK):
        yield items[start : start + _STAGE_CHUNK]


def drop_stage(conn: sqlite3.Connection) -> None:
    """Remove the TEMP tables of `stage_plan` (whether or not the plan was applied)."""
    for table in _STAGE_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _drop_stage(submit: Submit) -> None:
    # A closed store's connection took its TEMP tables with it.
    with suppress(StoreClosed):
        submit(drop_stage, lock=False)


def _stage_rows(sql: str, rows: Sequence[Sequence[Any]], conn: sqlite3.Connection) -> None:
    conn.executemany(sql, rows)


def _create_stage(conn: sqlite3.Connection) -> None:
    drop_stage(conn)
    for statement in _CREATE_STAGE:
        conn.execute(statement)


class Submit(Protocol):
    """Run a function in the writer thread, in BEGIN IMMEDIATE (or plain BEGIN: lock=False)."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /, *, lock: bool = True) -> T: ...


def upsert_many(
    ctx: Context,
    reader: Callable[[], sqlite3.Connection],
    submit: Submit,
    records: Sequence[TenantCreate],
    *,
    check_only: bool = False,
    progress: Progress | None = None,
) -> BulkUpsertResult:
    """Plan on `reader()`, stage and apply through `submit` (the writer); retry if stale."""
    report = _in_records(progress, len(records))
    started = 0.0  # when the transaction began (set in the writer thread)

    def apply(conn: sqlite3.Connection, plan: Plan | None) -> Plan:
        nonlocal started
        started = time.perf_counter()
        if plan is not None:
            apply_plan(conn, ctx, plan, report, staged=True)
            return plan
        # Planned under the lock: nothing can change the registry meanwhile.
        plan = plan_upserts(conn, ctx, records, report)
        if plan.problems:
            raise UpsertRejected(plan.problems)
        apply_plan(conn, ctx, plan, report)
        return plan

    for attempt in range(1, PLAN_ATTEMPTS + 1):
        plan = plan_upserts(reader(), ctx, records, report, seal=False)
        if plan.problems:
            raise UpsertRejected(plan.problems)
        if check_only or not plan.writes:
            return _summary(plan, 0.0, attempt)
        try:
            stage_plan(submit, ctx, plan, lambda: journal.next_seq(reader()), report)
            submit(partial(apply, plan=plan))
        except StalePlan:
            continue
        finally:
            _drop_stage(submit)
        return _summary(plan, time.perf_counter() - started, attempt)
    # Tenants or cards kept changing between planning and writing (someone is busy in the web
    # UI): plan inside the transaction this time, holding the lock as long as that takes.
    plan = submit(partial(apply, plan=None))
    return _summary(plan, time.perf_counter() - started, PLAN_ATTEMPTS + 1)


def _summary(plan: Plan, lock_seconds: float, attempts: int) -> BulkUpsertResult:
    return BulkUpsertResult(
        added=sum(r.created for r in plan.results),
        updated=sum(not r.created for r in plan.results),
        cards_added=sum(r.cards_added for r in plan.results),
        journaled=len(plan.changes),
        lock_seconds=lock_seconds,
        attempts=attempts,
        unchanged=plan.unchanged,
    )


def upsert_one(conn: sqlite3.Connection, ctx: Context, data: TenantCreate) -> UpsertResult:
    """One upsert inside the caller's transaction (see `plan_upserts` for what it does)."""
    plan = plan_upserts(conn, ctx, [data])
    if plan.problems:
        raise plan.problems[0].error
    apply_plan(conn, ctx, plan)
    return plan.results[0]


# Planning

_Checked = tuple[int, Person, tuple[int, ...], bytes, TenantCreate]


def _check(ctx: Context, records: Sequence[TenantCreate]) -> tuple[list[_Checked], list[Problem]]:
    """Validate and normalise each record and hash its ID number; refuse repeats in the batch."""
    checked: list[_Checked] = []
    problems: list[Problem] = []
    seen_ids: set[bytes] = set()
    seen_cards: set[int] = set()
    for index, data in enumerate(records):
        try:
            person, numbers = tenants.checked(data)
        except ValidationError as exc:
            problems.append(Problem(index, exc))
            continue
        id_hash = tenants.id_number_hash(ctx, person.id_number)
        errors: list[Conflict | ValidationError] = []
        if id_hash in seen_ids:
            errors.append(ValidationError("id_number", "the same person is listed twice"))
        seen_ids.add(id_hash)
        for number in numbers:
            if number in seen_cards:
                errors.append(ValidationError("card", f"card {number} is listed twice"))
            seen_cards.add(number)
        problems += [Problem(index, error) for error in errors]
        if not errors:
            checked.append((index, person, numbers, id_hash, data))
    return checked, problems


def _decide(
    plan: Plan,
    ctx: Context,
    checked: list[_Checked],
    stored: dict[bytes, _Stored],
    listed: dict[int, tuple[str, str, str]],
    held: dict[str, dict[int, str]],
    report: Progress,
) -> None:
    """Walk the records in order against an in-memory copy of the snapshot (no crypto)."""
    # The cards the batch may touch, and each relevant tenant's cards and room as the
    # records before the current one have left them.
    card_state = {number: (holder, status) for number, (holder, status, _) in listed.items()}
    room_now = {holder: room for holder, _, room in listed.values()}
    for done, (index, person, numbers, id_hash, data) in enumerate(checked, 1):
        if done % _TICK == 0:
            report("matching", done, len(checked))
        existing = stored.get(id_hash)
        tenant_id = existing.id if existing else str(uuid.uuid4())
        inserts: list[int] = []
        reissues: list[tuple[int, str]] = []
        conflicts: list[Conflict | ValidationError] = []
        for number in numbers:
            state = card_state.get(number)
            if state is None:
                inserts.append(number)
                continue
            holder, status = state
            if holder == tenant_id and status != "revoked":
                continue
            if status != "revoked":
                conflicts.append(
                    Conflict(
                        f"card {number} belongs to another tenant (room {room_now[holder]},"
                        f" card {status})",
                        field="card",
                    )
                )
                continue
            reissues.append((number, holder))
        if conflicts:
            plan.problems += [Problem(index, error) for error in conflicts]
            continue
        mine = held.setdefault(tenant_id, {})
        for number in inserts:
            card_state[number] = (tenant_id, "active")
            mine[number] = "active"
        for number, holder in reissues:
            card_state[number] = (tenant_id, "active")
            held.get(holder, {}).pop(number, None)
            mine[number] = "active"
        plan.card_inserts += [(number, tenant_id) for number in inserts]
        plan.card_reissues += [(number, tenant_id, holder) for number, holder in reissues]
        room_now[tenant_id] = person.room
        if existing is None:
            plan.rooms[person.room] = None
            plan.new_tenants.append(_NewTenant(tenant_id, person, data.status, data.source))
            plan.results.append(UpsertResult(tenant_id, created=True, cards_added=len(numbers)))
            if data.source == "local":
                cards = tuple((number, "active") for number in numbers)
                plan.changes.append(("added", tenant_id, person, data.status, cards))
            continue
        changed = _differs(ctx, existing, person)
        if changed or inserts or reissues or existing.status == "moved_out":
            plan.touched[tenant_id] = existing
        if changed:
            plan.rooms[person.room] = None
            plan.changed_people.append((tenant_id, person))
        status = existing.status
        if status == "moved_out":
            plan.reactivated.append(tenant_id)
            status, changed = "active", True
        added = len(inserts) + len(reissues)
        plan.results.append(UpsertResult(tenant_id, created=False, cards_added=added))
        plan.unchanged += not (changed or added)
        if (changed or added) and data.source == "local":
            plan.changes.append(("updated", tenant_id, person, status, tuple(sorted(mine.items()))))
    report("matching", len(checked), len(checked))


def _differs(ctx: Context, existing: _Stored, person: Person) -> bool:
    # The ID number is the same (it matched by its keyed hash); the phone is compared by
    # hash too, so nothing stored needs decrypting.
    return (
        existing.name != person.name
        or existing.room != person.room
        or existing.valid_from != person.valid_from.isoformat()
        or existing.valid_until != person.valid_until.isoformat()
        or existing.phone_hash != tenants.phone_hash(ctx, person.phone)
    )


def _seal(plan: Plan, ctx: Context, report: Progress) -> None:
    """Encrypt, hash and encode everything the plan writes, in memory (the unstaged path)."""
    total = len(plan.new_tenants) + len(plan.changed_people) + len(plan.changes)
    report("sealing", 0, total)
    plan.tenant_rows = [_tenant_row(ctx, plan.now, new) for new in plan.new_tenants]
    plan.person_rows = [_person_row(ctx, plan.now, *changed) for changed in plan.changed_people]
    report("sealing", len(plan.tenant_rows) + len(plan.person_rows), total)
    plan.card_inserts.sort()  # in primary-key order: appended to the B-tree, not spread over it
    plan.events = [_prepared(ctx, change) for change in plan.changes]
    plan.event_rows = [event.row(ctx, plan.first_seq + n) for n, event in enumerate(plan.events)]
    report("sealing", total, total)


def _tenant_row(ctx: Context, now: str, new: _NewTenant) -> tuple[Any, ...]:
    return tenants.tenant_row(ctx, new.tenant_id, new.person, new.status, new.source, now)


def _person_row(ctx: Context, now: str, tenant_id: str, person: Person) -> tuple[Any, ...]:
    return (
        person.name, *tenants.sealed_columns(ctx, tenant_id, person), person.room,
        person.valid_from.isoformat(), person.valid_until.isoformat(), now, tenant_id,
    )  # fmt: skip


def _prepared(ctx: Context, change: _Change) -> PreparedEvent:
    kind, tenant_id, person, status, cards = change
    return journal.prepare_event(ctx, tenants.change_event(kind, tenant_id, person, status, cards))


# Reading the snapshot


def _select_in(
    conn: sqlite3.Connection, select: str, column: str, values: Sequence[object]
) -> Iterator[Any]:
    """Rows of `select WHERE column IN (values)`, a few hundred bound values per query."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        yield from conn.execute(f"{select} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)


def _stored_tenants(conn: sqlite3.Connection, hashes: Sequence[bytes]) -> dict[bytes, _Stored]:
    select = (
        "SELECT id, id_number_hash, name, phone_hash, room, valid_from, valid_until, status"
        " FROM tenants"
    )
    rows = _select_in(conn, select, "id_number_hash", hashes)
    return {row[1]: _Stored(*row) for row in rows}


def _cards(conn: sqlite3.Connection, numbers: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """The listed cards that exist: holder, status and the holder's room."""
    select = (
        "SELECT c.number, c.tenant_id, c.status, t.room"
        " FROM cards AS c JOIN tenants AS t ON t.id = c.tenant_id"
    )
    return {row[0]: tuple(row[1:]) for row in _select_in(conn, select, "c.number", numbers)}


def _cards_of(conn: sqlite3.Connection, tenant_ids: Sequence[str]) -> dict[str, dict[int, str]]:
    """Every card of these tenants, for the card lists of their `tenant.changed` events."""
    found: dict[str, dict[int, str]] = {tenant_id: {} for tenant_id in tenant_ids}
    select = "SELECT number, tenant_id, status FROM cards"
    for number, tenant_id, status in _select_in(conn, select, "tenant_id", tenant_ids):
        found[tenant_id][number] = status
    return found


def _checks(plan: Plan) -> tuple[str, str, str]:
    """What _verify compares with, as JSON: built here, outside the lock."""
    tenant_rows = [
        [t.id, t.name, t.room, t.valid_from, t.valid_until, t.status,
         t.phone_hash.hex().upper(), t.id_number_hash.hex().upper()]
        for t in plan.touched.values()
    ]  # fmt: skip
    return (
        json.dumps(tenant_rows, ensure_ascii=False),
        json.dumps(list(plan.touched)),
        json.dumps(plan.touched_cards),
    )


def _verify(conn: sqlite3.Connection, plan: Plan) -> None:
    """StalePlan unless the registered tenants the plan touches, and their cards, are as planned."""
    if not plan.touched:
        return
    tenant_rows, tenant_ids, cards = plan.checks
    same = (
        _count(conn, _SAME_TENANTS, tenant_rows) == len(plan.touched)
        and _count(conn, _CARDS_HELD, tenant_ids) == len(plan.touched_cards)
        and _count(conn, _SAME_CARDS, cards) == len(plan.touched_cards)
    )
    if not same:
        raise StalePlan("tenants or cards the plan writes changed since it was made")


def _count(conn: sqlite3.Connection, sql: str, parameter: str) -> int:
    count: int = conn.execute(sql, (parameter,)).fetchone()[0]
    return count


def _expect(cursor: sqlite3.Cursor, rows: int) -> None:
    if cursor.rowcount != rows:
        raise StalePlan(f"expected to change {rows} rows, changed {cursor.rowcount}")


def _in_records(progress: Progress | None, records: int) -> Progress:
    """Report every stage in records (the caller's rows), whatever the stage itself counts."""
    if progress is None:
        return _ignore
    reporter = progress

    def report(stage: str, done: int, total: int) -> None:
        reporter(stage, records if total <= 0 else min(done, total) * records // total, records)

    return report


def _ignore(stage: str, done: int, total: int) -> None:
    pass
