"""The store side of the city downlink (SPEC 7): the command counter and `registry.apply`.

    if store.claim_command_counter(command.counter):          # persisted before acting
        result = store.apply_registry(version=8, base_version=7, tenants=[...], removed=[...])

The counter is one meta row, raised only upwards, in one writer transaction.

A registry is the city's list of tenants, from its population database. `base_version` None is
a full set that replaces the registry; otherwise it is a delta for the registry at exactly
that version. It is applied all or nothing, like a bulk upsert:

1. check (caller's thread, no database): every record's shape, ID number, phone, dates,
   statuses and cards, and repeats across records; keyed hashes;
2. plan (caller's thread, one read snapshot): version order, the tenants and cards the
   registry touches, what to insert, update and delete, and conflicts with tenants it leaves
   alone; then seal the ID numbers and phones to be written;
3. write (the writer's BEGIN IMMEDIATE): check that what the plan read has not changed (one
   statement), then one statement per table and the new version. A plan gone stale is made
   again (after PLAN_ATTEMPTS, inside the transaction, where nothing can move).

City records are stored as `source='city'` and journal nothing: `tenant.changed` events tell
the city about local changes, and these came from it. A tenant with a `tenant.changed` event
the city has not acknowledged yet is left exactly as it is here (not updated, not removed,
not deleted for being absent from a full set): the city made this registry without knowing
that change, and the pending event will tell it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from . import tenants
from .context import Context
from .db import read_snapshot
from .errors import Conflict, StoreError, ValidationError
from .models import CARD_STATUSES, TENANT_STATUSES, CardStatus, TenantStatus
from .tenants import Person
from .tx import Transaction
from .validation import (
    check_card_number,
    check_validity,
    normalize_id_number,
    normalize_name,
    normalize_phone,
    normalize_room,
)

T = TypeVar("T")

REGISTRY_VERSION = "registry_version"
COMMAND_COUNTER = "command_counter"
INT_MAX = 2**63 - 1  # SQLite's INTEGER
# Plans made on a read snapshot before planning inside the transaction instead.
PLAN_ATTEMPTS = 3

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ID_RULE = "must be the city's tenant id, a UUID in lower case (8-4-4-4-12 hex digits)"

# The tenants and cards a plan depends on, as two JSON arrays in one statement: all of them
# (:all = 1, a full set), or a delta's scope: its tenants and removed ids (:ids), the holders
# of its ID numbers (:hashes, in hex) and of its cards (:numbers), the cards it lists and every
# card of its tenants. The plan reads them from its snapshot; the transaction reads them again
# and compares the texts, in C: no row-by-row Python while the lock is held.
_READ = (
    "SELECT (SELECT json_group_array(json_array(id, hex(id_number_hash), hex(phone_hash), name,"
    " room, valid_from, valid_until, status, source)) FROM (SELECT * FROM tenants"
    " WHERE :all OR id IN (SELECT value FROM json_each(:ids))"
    " OR hex(id_number_hash) IN (SELECT value FROM json_each(:hashes))"
    " OR id IN (SELECT tenant_id FROM cards"
    " WHERE number IN (SELECT value FROM json_each(:numbers)))"
    " ORDER BY id)),"
    " (SELECT json_group_array(json_array(number, tenant_id, status)) FROM (SELECT * FROM cards"
    " WHERE :all OR number IN (SELECT value FROM json_each(:numbers))"
    " OR tenant_id IN (SELECT value FROM json_each(:ids)) ORDER BY number))"
)
_PENDING = (
    "SELECT DISTINCT tenant_id FROM events"
    " WHERE seq > ? AND type = 'tenant.changed' AND tenant_id IS NOT NULL"
)
# The writes under the lock are one statement per table over JSON arrays (and, for the sealed
# columns, byte strings of fixed-size fields cut apart with substr()): SQLite runs each in C,
# instead of the writer taking the GIL back for every row from the service's busy threads.
_DELETE_TENANTS = (  # their cards go too (ON DELETE CASCADE)
    "DELETE FROM tenants WHERE id IN (SELECT value FROM json_each(?))"
)
_INSERT_ROOMS = "INSERT OR IGNORE INTO rooms (room, created) SELECT value, ? FROM json_each(?)"
# A 36-byte stand-in (HMACs are 32) while ID numbers move between tenants of one registry:
# UNIQUE is checked row by row, so two tenants swapping ID numbers would collide half-way.
_PARK_ID_HASHES = (
    "UPDATE tenants SET id_number_hash = CAST(id AS BLOB)"
    " WHERE id IN (SELECT value FROM json_each(?))"
)
# :rows is [[id, name, room, valid_from, valid_until, status], ...]; row k's sealed fields
# are bytes k*size..(k+1)*size-1 of :id_sealed, :id_hashes, :phone_sealed, :phone_hashes.
_ROWS = (
    " j.value ->> 0 AS id, j.value ->> 1 AS name,"
    " substr(:id_sealed, j.key * :id_size + 1, :id_size) AS id_sealed,"
    " substr(:id_hashes, j.key * :hash_size + 1, :hash_size) AS id_hash,"
    " substr(:phone_sealed, j.key * :phone_size + 1, :phone_size) AS phone_sealed,"
    " substr(:phone_hashes, j.key * :hash_size + 1, :hash_size) AS phone_hash,"
    " j.value ->> 2 AS room, j.value ->> 3 AS valid_from, j.value ->> 4 AS valid_until,"
    " j.value ->> 5 AS status"
)
_INSERT_TENANTS = (
    "INSERT INTO tenants (id, name, id_number_sealed, id_number_hash, phone_sealed, phone_hash,"
    " room, valid_from, valid_until, status, source, created, updated)"
    " SELECT" + _ROWS + ", 'city', :now, :now FROM json_each(:rows) AS j"
)
_UPDATE_TENANTS = (
    "UPDATE tenants SET name = j.value ->> 1,"
    " id_number_sealed = substr(:id_sealed, j.key * :id_size + 1, :id_size),"
    " id_number_hash = substr(:id_hashes, j.key * :hash_size + 1, :hash_size),"
    " phone_sealed = substr(:phone_sealed, j.key * :phone_size + 1, :phone_size),"
    " phone_hash = substr(:phone_hashes, j.key * :hash_size + 1, :hash_size),"
    " room = j.value ->> 2, valid_from = j.value ->> 3, valid_until = j.value ->> 4,"
    " status = j.value ->> 5, source = 'city', updated = :now"
    " FROM json_each(:rows) AS j WHERE tenants.id = j.value ->> 0"
)
_DELETE_CARDS = "DELETE FROM cards WHERE number IN (SELECT value FROM json_each(?))"
# [[number, holder, status], ...]. A card keeps its PIN while it stays with the same tenant;
# a new holder starts without one. (WHERE true: SQLite's rule for an upsert from a SELECT.)
_UPSERT_CARDS = (
    "INSERT INTO cards (number, tenant_id, status, created, updated)"
    " SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, ?1, ?1 FROM json_each(?2) AS j"
    " WHERE true ORDER BY 1"
    " ON CONFLICT (number) DO UPDATE SET tenant_id = excluded.tenant_id,"
    " status = excluded.status, updated = excluded.updated,"
    " pin_hash = CASE WHEN cards.tenant_id = excluded.tenant_id THEN cards.pin_hash END"
)


# Command counter


def check_counter(counter: object) -> int:
    """A command counter as the store keeps it (ValidationError if not an integer in range)."""
    if type(counter) is not int or not 0 <= counter <= INT_MAX:
        raise ValidationError("counter", f"must be an integer 0..{INT_MAX}, got {counter!r}")
    return counter


def claim_counter(tx: Transaction, counter: int) -> bool:
    """Record `counter` as the last accepted one if it is above it; return whether it was."""
    if counter <= command_counter(tx.conn):
        return False
    tx.set_meta("command_counter", counter)
    return True


def command_counter(conn: sqlite3.Connection) -> int:
    """The last accepted command counter (0 before the first)."""
    return _meta_int(conn, COMMAND_COUNTER) or 0


def registry_version(conn: sqlite3.Connection) -> int | None:
    """The version of the city registry applied last, or None before the first."""
    return _meta_int(conn, REGISTRY_VERSION)


def _meta_int(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


# Results and errors


@dataclass(frozen=True, slots=True)
class RegistryApplied:
    """What `Store.apply_registry` did."""

    version: int
    previous_version: int | None
    full: bool  # a full set (base_version None) rather than a delta
    added: int
    updated: int  # tenants already here whose record or cards changed
    unchanged: int  # tenants already here exactly as listed
    removed: int  # tenants deleted: listed in `removed`, or absent from a full set
    cards_written: int  # cards added, moved to another tenant, or with a new status
    cards_removed: int  # cards no longer listed for any tenant, and those of removed tenants
    # Tenants left as they are although the registry lists, removes or omits them: a local
    # change of theirs is not acknowledged by the city yet (see the module's docstring).
    kept_local: tuple[str, ...]
    lock_seconds: float  # BEGIN IMMEDIATE to COMMIT done: an upper bound of the doors' wait
    attempts: int = 1  # plans made; more than 1 when the registry changed meanwhile

    def summary(self) -> dict[str, Any]:
        """The counts as JSON for a `command.executed` event (no personal data, no timing)."""
        return {
            "full": self.full,
            "previous_version": self.previous_version,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "cards_written": self.cards_written,
            "cards_removed": self.cards_removed,
            "kept_local": list(self.kept_local),
        }


@dataclass(frozen=True, slots=True)
class RegistryProblem:
    """Why `tenants[index]` (or `removed[index]`) of a registry cannot be applied."""

    index: int
    tenant_id: str | None  # the record's id, when it had a well-formed one
    error: Conflict | ValidationError
    section: Literal["tenants", "removed"] = "tenants"

    def __str__(self) -> str:
        who = f" (id {self.tenant_id})" if self.tenant_id else ""
        return f"{self.section}[{self.index}]{who}: {self.error}"


class RegistryRejected(StoreError):
    """The registry was not applied, nothing was written; `error` is the command result's word."""

    error: str = "rejected"


class VersionGap(RegistryRejected):
    """A delta for another version than the registry's: the city should send the full set."""

    error = "version_gap"

    def __init__(self, current: int | None, base_version: int) -> None:
        have = "no registry yet" if current is None else f"registry version {current}"
        super().__init__(
            f"version_gap: the delta applies to version {base_version}, this gateway has"
            f" {have}; send the full set"
        )
        self.current = current
        self.base_version = base_version


class VersionNotNewer(RegistryRejected):
    """`version` is not above the registry's: `already_applied` (equal) or `stale_version`."""

    def __init__(self, current: int, version: int) -> None:
        self.error = "already_applied" if version == current else "stale_version"
        super().__init__(
            f"{self.error}: version {version} is not above this gateway's registry version"
            f" {current}"
        )
        self.current = current
        self.version = version


class RegistryInvalid(RegistryRejected):
    """Records that cannot be applied; `problems` has every one, in order."""

    error = "invalid_registry"

    def __init__(self, problems: list[RegistryProblem]) -> None:
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"invalid_registry: nothing applied, {len(problems)} problem(s):\n{lines}")
        self.problems = problems


class _StalePlan(StoreError):
    """The registry changed between planning and writing."""


# Step 1: the records on their own


@dataclass(frozen=True, slots=True)
class _Record:
    """One city record, checked and normalised (plaintext: never leaves the store)."""

    index: int
    id: str
    person: Person = field(repr=False)
    status: TenantStatus
    cards: dict[int, CardStatus]
    id_hash: bytes = field(repr=False)
    phone_hash: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Checked:
    records: list[_Record]
    removed: dict[str, int]  # id -> its index in `removed`
    problems: list[RegistryProblem]


def check_versions(version: object, base_version: object) -> tuple[int, int | None]:
    """The versions as integers (ValidationError if not)."""
    if type(version) is not int or not 0 <= version <= INT_MAX:
        raise ValidationError("version", f"must be an integer 0..{INT_MAX}, got {version!r}")
    if base_version is not None and (
        type(base_version) is not int or not 0 <= base_version <= INT_MAX
    ):
        raise ValidationError(
            "base_version", f"must be null or an integer 0..{INT_MAX}, got {base_version!r}"
        )
    return version, base_version


def check_records(ctx: Context, records: object, removed: object) -> _Checked:
    """Validate every record and removed id, and repeats across them; no database needed."""
    if not isinstance(records, list | tuple):
        raise ValidationError("tenants", "must be a list of tenant records")
    if not isinstance(removed, list | tuple):
        raise ValidationError("removed", "must be a list of tenant ids")
    checked: list[_Record] = []
    problems: list[RegistryProblem] = []
    first_id: dict[str, int] = {}
    first_person: dict[bytes, int] = {}
    first_card: dict[int, tuple[int, str]] = {}
    for index, raw in enumerate(records):
        record, errors = _check_record(ctx, index, raw)
        tenant_id = record.id if record else _well_formed_id(raw)
        if record is not None:
            if (other := first_id.setdefault(record.id, index)) != index:
                errors.append(ValidationError("id", f"tenants[{other}] has the same id"))
            if (other := first_person.setdefault(record.id_hash, index)) != index:
                errors.append(ValidationError("id_number", f"the same person as tenants[{other}]"))
            for number in record.cards:
                seen = first_card.setdefault(number, (index, record.id))
                if seen[0] != index:
                    errors.append(
                        ValidationError(
                            "cards", f"card {number} is also listed for tenants[{seen[0]}]"
                            f" (id {seen[1]})",
                        )
                    )  # fmt: skip
        problems += [RegistryProblem(index, tenant_id, error) for error in errors]
        if record is not None and not errors:
            checked.append(record)
    gone: dict[str, int] = {}
    for index, value in enumerate(removed):
        if not isinstance(value, str) or not _UUID.fullmatch(value):
            error = ValidationError("id", _ID_RULE)
            problems.append(RegistryProblem(index, None, error, "removed"))
        elif value in first_id:
            error = ValidationError("id", f"is also listed in tenants[{first_id[value]}]")
            problems.append(RegistryProblem(index, value, error, "removed"))
        else:
            gone.setdefault(value, index)
    return _Checked(checked, gone, problems)


def _check_record(
    ctx: Context, index: int, raw: object
) -> tuple[_Record | None, list[Conflict | ValidationError]]:
    if not isinstance(raw, Mapping):
        return None, [ValidationError("tenant", "must be an object")]
    errors: list[Conflict | ValidationError] = []

    def take(key: str, check: Callable[[Any], T]) -> T | None:
        if key not in raw or raw[key] is None:
            errors.append(ValidationError(key, "is required"))
            return None
        try:
            return check(raw[key])
        except ValidationError as exc:
            errors.append(exc)
            return None

    tenant_id = take("id", _city_id)
    name = take("name", partial(_text, normalize_name, "name"))
    id_number = take("id_number", partial(_text, normalize_id_number, "id_number"))
    phone = take("phone", partial(_text, normalize_phone, "phone"))
    room = take("room", partial(_text, normalize_room, "room"))
    valid_from = take("valid_from", partial(_date, "valid_from"))
    valid_until = take("valid_until", partial(_date, "valid_until"))
    status = take("status", _tenant_status)
    held = take("cards", _cards)
    if valid_from is not None and valid_until is not None:
        try:
            check_validity(valid_from, valid_until)
        except ValidationError as exc:
            errors.append(exc)
    if (
        errors or tenant_id is None or name is None or id_number is None or phone is None
        or room is None or valid_from is None or valid_until is None or status is None
        or held is None
    ):  # fmt: skip
        return None, errors
    person = Person(name, id_number, phone, room, valid_from, valid_until)
    return _Record(
        index, tenant_id, person, status, held,
        tenants.id_number_hash(ctx, id_number), tenants.phone_hash(ctx, phone),
    ), errors  # fmt: skip


def _well_formed_id(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and _UUID.fullmatch(value) else None


def _city_id(value: object) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise ValidationError("id", _ID_RULE)
    return value


def _text(normalize: Callable[[str, str], str], key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(key, "must be a string")
    return normalize(value, key)


def _date(key: str, value: object) -> date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(key, f"must be a date YYYY-MM-DD, got {value!r}")


def _tenant_status(value: object) -> TenantStatus:
    for status in TENANT_STATUSES:
        if value == status:
            return status
    raise ValidationError("status", f"must be one of {', '.join(TENANT_STATUSES)}, got {value!r}")


def _card_status(key: str, value: object) -> CardStatus:
    for status in CARD_STATUSES:
        if value == status:
            return status
    raise ValidationError(key, f"must be one of {', '.join(CARD_STATUSES)}, got {value!r}")


def _cards(value: object) -> dict[int, CardStatus]:
    if not isinstance(value, list | tuple):
        raise ValidationError("cards", 'must be a list of {"number", "status"} objects')
    held: dict[int, CardStatus] = {}
    for n, card in enumerate(value):
        where = f"cards[{n}]"
        if not isinstance(card, Mapping):
            raise ValidationError(where, 'must be a {"number", "status"} object')
        raw_number: Any = card.get("number")  # checked as an int just below
        number = check_card_number(raw_number, f"{where}.number")
        status = _card_status(f"{where}.status", card.get("status"))
        if number in held:
            raise ValidationError(where, f"card {number} is listed twice for this tenant")
        held[number] = status
    return held


# Step 2: the plan


class _Row(NamedTuple):
    """A registered tenant as the plan read it (hashes as bytes)."""

    id: str
    id_hash: bytes
    phone_hash: bytes
    name: str
    room: str
    valid_from: str
    valid_until: str
    status: str
    source: str


@dataclass(slots=True)
class _Plan:
    version: int
    base_version: int | None
    current: int | None
    scope: dict[str, Any]  # the parameters of _READ
    read: tuple[str, str] = field(repr=False)  # what _READ returned
    now: str
    registered: dict[str, _Row] = field(default_factory=dict, repr=False)
    held: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)  # holder, status
    kept: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    new: list[_Record] = field(default_factory=list, repr=False)
    changed: list[_Record] = field(default_factory=list, repr=False)
    parked: list[str] = field(default_factory=list)  # changed tenants whose ID number changes
    updated: int = 0
    unchanged: int = 0
    rooms: set[str] = field(default_factory=set)
    card_writes: list[tuple[int, str, str]] = field(default_factory=list)
    card_deletes: list[int] = field(default_factory=list)
    cards_removed: int = 0
    inserts: dict[str, Any] = field(default_factory=dict, repr=False)  # _INSERT_TENANTS
    updates: dict[str, Any] = field(default_factory=dict, repr=False)  # _UPDATE_TENANTS


def plan_registry(
    conn: sqlite3.Connection,
    ctx: Context,
    checked: _Checked,
    version: int,
    base_version: int | None,
    acked: int,
) -> _Plan:
    """Read one snapshot, check the versions, decide and seal every write; write nothing.

    `acked` is the acknowledgement watermark (`Store.acked_seq()`): tenants with a
    `tenant.changed` event above it are kept as they are. Raises VersionGap or VersionNotNewer
    first (a wrong version says more than its records), then RegistryInvalid with every record
    problem, those found here against the registry included.
    """
    with read_snapshot(conn):
        current = registry_version(conn)
        _check_order(current, version, base_version)
        if checked.problems:
            raise RegistryInvalid(checked.problems)
        scope = _scope(checked, full=base_version is None)
        read = _read(conn, scope)
        pending = {row[0] for row in conn.execute(_PENDING, (acked,))}
    plan = _Plan(version, base_version, current, scope, read, ctx.now_text())
    for row in json.loads(read[0]):
        row[1:3] = bytes.fromhex(row[1]), bytes.fromhex(row[2])
        plan.registered[row[0]] = _Row(*row)
    plan.held = {number: (holder, status) for number, holder, status in json.loads(read[1])}
    _decide(plan, checked, pending)
    _seal(plan, ctx)
    return plan


def _check_order(current: int | None, version: int, base_version: int | None) -> None:
    if current is not None and version <= current:
        raise VersionNotNewer(current, version)
    if base_version is not None and base_version != current:
        raise VersionGap(current, base_version)


def _scope(checked: _Checked, *, full: bool) -> dict[str, Any]:
    if full:
        return {"all": 1, "ids": "[]", "hashes": "[]", "numbers": "[]"}
    return {
        "all": 0,
        "ids": json.dumps(sorted({r.id for r in checked.records} | checked.removed.keys())),
        "hashes": json.dumps(sorted(r.id_hash.hex().upper() for r in checked.records)),
        "numbers": json.dumps(sorted(n for r in checked.records for n in r.cards)),
    }


def _read(conn: sqlite3.Connection, scope: dict[str, Any]) -> tuple[str, str]:
    tenants_json, cards_json = conn.execute(_READ, scope).fetchone()
    return str(tenants_json), str(cards_json)


def _decide(plan: _Plan, checked: _Checked, pending: set[str]) -> None:
    """Who is added, updated, deleted or kept; conflicts with tenants left alone."""
    registered, held = plan.registered, plan.held
    listed = {r.id for r in checked.records}
    kept = [r.id for r in checked.records if r.id in pending]
    kept += [t for t in checked.removed if t in pending and t in registered]
    records = [r for r in checked.records if r.id not in pending]
    if plan.base_version is None:
        leaving = [t for t in registered if t not in listed and t not in pending]
        kept += [t for t in registered if t not in listed and t in pending]
    else:
        leaving = [t for t in checked.removed if t in registered and t not in pending]
    replaced = {r.id for r in records} | set(leaving)
    # Tenants this registry leaves as they are (in a delta, only those it could collide with).
    staying = {t for t in registered if t not in replaced}
    by_person = {row.id_hash: row.id for row in registered.values()}
    problems: list[RegistryProblem] = []
    for record in records:
        errors: list[Conflict | ValidationError] = []
        holder = by_person.get(record.id_hash)
        if holder is not None and holder != record.id and holder in staying:
            errors.append(Conflict(_left_alone("this person is registered as", plan, holder,
                                               pending), field="id_number"))  # fmt: skip
        for number in record.cards:
            card = held.get(number)
            if card is not None and card[0] != record.id and card[0] in staying:
                errors.append(Conflict(_left_alone(f"card {number} is held by", plan, card[0],
                                                   pending), field="cards"))  # fmt: skip
        problems += [RegistryProblem(record.index, record.id, error) for error in errors]
    if problems:
        raise RegistryInvalid(problems)

    plan.kept = sorted(set(kept))
    plan.deletes = leaving
    cards_of: dict[str, list[int]] = {}
    for number, (holder, _status) in held.items():
        cards_of.setdefault(holder, []).append(number)
    listed_cards: set[int] = set()
    for record in records:
        row = registered.get(record.id)
        wanted = [
            (number, record.id, status)
            for number, status in record.cards.items()
            if held.get(number) != (record.id, status)
        ]
        dropped = any(n not in record.cards for n in cards_of.get(record.id, ()))
        plan.card_writes += wanted
        listed_cards.update(record.cards)
        if row is None:
            plan.new.append(record)
            plan.rooms.add(record.person.room)
            continue
        if not _same(row, record):
            plan.changed.append(record)
            plan.rooms.add(record.person.room)
            if row.id_hash != record.id_hash:
                plan.parked.append(record.id)
        if _same(row, record) and not wanted and not dropped:
            plan.unchanged += 1
        else:
            plan.updated += 1
    plan.card_writes.sort()
    renewed = {r.id for r in records if r.id in registered}
    gone = set(leaving)
    for number, (holder, _status) in held.items():
        if number in listed_cards:
            continue
        if holder in renewed:
            plan.card_deletes.append(number)
        if holder in renewed or holder in gone:
            plan.cards_removed += 1
    plan.card_deletes.sort()


def _left_alone(what: str, plan: _Plan, holder: str, pending: set[str]) -> str:
    why = (
        "changed here and not yet acknowledged by the city, so kept as it is"
        if holder in pending
        else "which this registry does not replace or remove"
    )
    return f"{what} tenant {holder} (room {plan.registered[holder].room}), {why}"


def _same(row: _Row, record: _Record) -> bool:
    person = record.person
    return (
        row.source == "city"
        and row.name == person.name
        and row.room == person.room
        and row.valid_from == person.valid_from.isoformat()
        and row.valid_until == person.valid_until.isoformat()
        and row.status == record.status
        and row.id_hash == record.id_hash
        and row.phone_hash == record.phone_hash
    )


def _seal(plan: _Plan, ctx: Context) -> None:
    """Encrypt and hash the ID numbers and phones to be written (outside the lock)."""
    plan.inserts = _tenant_rows(ctx, plan.new, plan.now)
    plan.updates = _tenant_rows(ctx, plan.changed, plan.now)


def _tenant_rows(ctx: Context, records: list[_Record], now: str) -> dict[str, Any]:
    """The parameters of _ROWS for these records, sealed for their tenant ids."""
    rows: list[list[str]] = []
    sealed: tuple[list[bytes], ...] = ([], [], [], [])
    for r in records:
        person = r.person
        rows.append([r.id, person.name, person.room, person.valid_from.isoformat(),
                     person.valid_until.isoformat(), r.status])  # fmt: skip
        for column, value in zip(sealed, tenants.sealed_columns(ctx, r.id, person), strict=True):
            column.append(value)
    id_sealed, id_hashes, phone_sealed, phone_hashes = sealed
    return {
        "rows": json.dumps(rows, ensure_ascii=False),
        "id_sealed": _fixed(id_sealed, "id_size"),
        "id_hashes": _fixed(id_hashes, "hash_size"),
        "phone_sealed": _fixed(phone_sealed, "phone_size"),
        "phone_hashes": _fixed(phone_hashes, "hash_size"),
        "id_size": len(id_sealed[0]) if id_sealed else 0,
        "phone_size": len(phone_sealed[0]) if phone_sealed else 0,
        "hash_size": len(id_hashes[0]) if id_hashes else 0,
        "now": now,
    }


def _fixed(values: list[bytes], size: str) -> bytes:
    # Normalised ID numbers (18 characters) and phones (11 digits) seal to one size each.
    if len({len(value) for value in values}) > 1:
        raise StoreError(f"sealed values of different sizes ({size}); cannot cut them apart")
    return b"".join(values)


# Step 3: the write


def write_plan(tx: Transaction, plan: _Plan) -> None:
    """Write the plan inside the writer's transaction; _StalePlan if the registry moved."""
    conn = tx.conn
    _verify(conn, plan)
    now = plan.now
    if plan.deletes:
        conn.execute(_DELETE_TENANTS, (json.dumps(plan.deletes),))
    if plan.rooms:
        conn.execute(_INSERT_ROOMS, (now, json.dumps(sorted(plan.rooms), ensure_ascii=False)))
    if plan.parked:
        conn.execute(_PARK_ID_HASHES, (json.dumps(plan.parked),))
    if plan.changed:
        updated = conn.execute(_UPDATE_TENANTS, plan.updates).rowcount
        if updated != len(plan.changed):
            raise _StalePlan(f"expected to update {len(plan.changed)} tenants, updated {updated}")
    if plan.new:
        conn.execute(_INSERT_TENANTS, plan.inserts)
    if plan.card_deletes:
        conn.execute(_DELETE_CARDS, (json.dumps(plan.card_deletes),))
    if plan.card_writes:
        conn.execute(_UPSERT_CARDS, (now, json.dumps(plan.card_writes)))
    tx.set_meta("registry_version", plan.version)


def _verify(conn: sqlite3.Connection, plan: _Plan) -> None:
    """_StalePlan unless the version, and every tenant and card the plan read, are unchanged.

    A local change to one of them changes its row too, so it is caught here, and the next
    plan finds its `tenant.changed` event pending.
    """
    if registry_version(conn) != plan.current:
        raise _StalePlan("the registry version changed since the plan was made")
    if _read(conn, plan.scope) != plan.read:
        raise _StalePlan("tenants or cards changed since the plan was made")


class RunTransaction(Protocol):
    """`Store.transaction`: run fn(tx) in the writer's BEGIN IMMEDIATE, return its result."""

    def __call__(self, fn: Callable[[Transaction], T], /) -> T: ...


def apply_registry(
    ctx: Context,
    reader: Callable[[], sqlite3.Connection],
    transaction: RunTransaction,
    acked_seq: Callable[[], int],
    version: int,
    base_version: int | None,
    records: Sequence[Mapping[str, Any]],
    removed: Sequence[str],
) -> RegistryApplied:
    """Check, plan on `reader()`, write through `transaction`; plan again if it went stale.

    `acked_seq()` is called in this thread before each plan: a watermark read a moment early
    is only lower, which keeps more tenants as they are, never fewer.
    """
    version, base_version = check_versions(version, base_version)
    checked = check_records(ctx, records, removed)
    started = 0.0  # when the transaction began (set in the writer thread)

    def write(tx: Transaction, plan: _Plan | None, acked: int) -> _Plan:
        nonlocal started
        started = time.perf_counter()
        if plan is None:  # planned under the lock: nothing can move meanwhile
            plan = plan_registry(tx.conn, ctx, checked, version, base_version, acked)
        write_plan(tx, plan)
        return plan

    for attempt in range(1, PLAN_ATTEMPTS + 1):
        acked = acked_seq()
        plan = plan_registry(reader(), ctx, checked, version, base_version, acked)
        try:
            transaction(partial(write, plan=plan, acked=acked))
        except _StalePlan:
            continue
        return _result(plan, time.perf_counter() - started, attempt)
    plan = transaction(partial(write, plan=None, acked=acked_seq()))
    return _result(plan, time.perf_counter() - started, PLAN_ATTEMPTS + 1)


def _result(plan: _Plan, lock_seconds: float, attempts: int) -> RegistryApplied:
    return RegistryApplied(
        version=plan.version,
        previous_version=plan.current,
        full=plan.base_version is None,
        added=len(plan.new),
        updated=plan.updated,
        unchanged=plan.unchanged,
        removed=len(plan.deletes),
        cards_written=len(plan.card_writes),
        cards_removed=plan.cards_removed,
        kept_local=tuple(plan.kept),
        lock_seconds=lock_seconds,
        attempts=attempts,
    )
