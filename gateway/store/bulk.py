"""Synthetic registries for benchmarks and tests: many valid tenants and cards, quickly.

    seeded = seed_synthetic_registry(store, tenants=100_000, cards_per_tenant=10)
    store.card_lookup(seeded.first_card)          # a CardGrant, like any imported card

Every tenant is what the store itself would write: a valid resident ID number (real birth
date, MOD 11-2 check character) and mobile number, both sealed with AES-GCM and keyed-hashed,
a room, a stay around the store clock's today, active cards. They are written as
`source="city"`, which the store never journals back: a benchmark registry must not end up
in `tenant.changed` events bound for the city.

The numbers are derived from the card numbers, so two seeds with different `first_card` ranges
never collide (ID region codes 440000-440199 are never the test factories' 440305).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

from web_security.id_numbers import CHECK_CHARS, ID_WEIGHTS

from .context import Context
from .db import WRITER_CACHE_KIB
from .errors import Conflict, StoreClosed, ValidationError
from .store import Store
from .tenants import ID_CONTEXT, PHONE_CONTEXT
from .tx import Transaction
from .validation import CARD_NUMBER_MAX

# Tenants per transaction: few transactions, each small enough for a Pi's memory.
BATCH = 50_000
# The writer's page cache while seeding (KiB; the usual is db.WRITER_CACHE_KIB).
SEED_CACHE_KIB = 256 * 1024
# Birth dates: 36,500 days from 1925-01-01, 1,000 sequence numbers a day, then the region.
_BORN = date(1925, 1, 1)
_DAYS = 36_500
# Field sizes: sealed = version byte + 12-byte nonce + plaintext + 16-byte tag.
_ID_SEALED, _PHONE_SEALED, _HASH = 1 + 12 + 18 + 16, 1 + 12 + 11 + 16, 32
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


@dataclass(frozen=True, slots=True)
class SeedResult:
    """The cards written are first_card..last_card (inclusive), held by `tenants` tenants."""

    first_card: int
    last_card: int
    tenants: int


def seed_synthetic_registry(
    store: Store,
    *,
    tenants: int,
    cards_per_tenant: int = 1,
    first_card: int = 1_000_000,
    rooms: int | None = None,
) -> SeedResult:
    """Add `tenants` synthetic tenants holding consecutive cards from `first_card`.

    Tenant k holds cards first_card + k*cards_per_tenant onwards and lives in room k % rooms
    (default: two tenants a room). Written through the store's writer in transactions of
    BATCH tenants, which are not one all-or-nothing whole: the caller's thread seals and
    hashes the next batch while the writer stores the current one. Conflict, before anything
    is written, if a card of the range is already registered.
    """
    if tenants < 0:
        raise ValidationError("tenants", "must not be negative")
    if cards_per_tenant < 1:
        raise ValidationError("cards_per_tenant", "must be at least 1")
    room_count = max(1, (tenants + 1) // 2) if rooms is None else rooms
    if room_count < 1:
        raise ValidationError("rooms", "must be at least 1")
    last_card = first_card + tenants * cards_per_tenant - 1
    if first_card < 0 or last_card > CARD_NUMBER_MAX:
        raise ValidationError("first_card", f"cards must stay within 0..{CARD_NUMBER_MAX}")
    if tenants == 0:
        return SeedResult(first_card, last_card, 0)
    taken = (
        store.reader()
        .execute(
            "SELECT number FROM cards WHERE number BETWEEN ? AND ? LIMIT 1", (first_card, last_card)
        )
        .fetchone()
    )
    if taken is not None:
        raise Conflict(f"card {taken[0]} is already registered", field="card")

    ctx = store.ctx
    today = ctx.now().date()
    stay = ((today - timedelta(days=30)).isoformat(), (today + timedelta(days=365)).isoformat())
    now = ctx.now_text()
    labels = [_room_label(r) for r in range(room_count)]
    # The random-keyed tenant indexes (id, ID hash, phone hash) outgrow the writer's usual
    # page cache after a few hundred thousand tenants; SQLite only allocates what it uses.
    store.transaction(partial(_cache, SEED_CACHE_KIB))
    try:
        store.transaction(partial(_write_rooms, labels, now))
        with ThreadPoolExecutor(1, thread_name_prefix="seed-submit") as submitter:
            writing: Future[None] | None = None
            for start in range(0, tenants, BATCH):
                count = min(BATCH, tenants - start)
                batch = _batch(ctx, start, count, first_card, cards_per_tenant, labels, stay, now)
                if writing is not None:
                    writing.result()
                writing = submitter.submit(store.transaction, batch)
            if writing is not None:
                writing.result()
    finally:
        with suppress(StoreClosed):
            store.transaction(partial(_cache, WRITER_CACHE_KIB))
    return SeedResult(first_card, last_card, tenants)


def _batch(
    ctx: Context,
    start: int,
    count: int,
    first_card: int,
    per: int,
    labels: list[str],
    stay: tuple[str, str],
    now: str,
) -> Callable[[Transaction], None]:
    """Tenants start..start+count-1, sealed and hashed, as a function for store.transaction.

    The rows travel as a JSON array (id, name, room) and four byte strings of fixed-length
    fields (sealed ID numbers, ID hashes, sealed phones, phone hashes) cut apart in SQL:
    one statement binds them all, so the writer runs it in C without taking the GIL back
    row after row from the thread preparing the next batch.
    """
    ids = _uuid4s(count)
    people: list[list[str]] = []
    id_sealed, id_hashes, phone_sealed, phone_hashes = [], [], [], []
    keys = ctx.keys
    for k, tenant_id in enumerate(ids, start):
        number = first_card + k * per
        id_number, phone = _id_number(number), _phone(number)
        row_id = tenant_id.encode()
        people.append(
            [tenant_id, _SURNAMES[k % 20] + _GIVEN[k // 20 % 20] + str(k), labels[k % len(labels)]]
        )
        id_sealed.append(keys.seal(id_number.encode(), ID_CONTEXT + row_id))
        id_hashes.append(keys.lookup_hash("id_number", id_number))
        phone_sealed.append(keys.seal(phone.encode(), PHONE_CONTEXT + row_id))
        phone_hashes.append(keys.lookup_hash("phone", phone))
    tenants = {
        "people": json.dumps(people, ensure_ascii=False),
        "id_sealed": _fixed(id_sealed, _ID_SEALED),
        "id_hashes": _fixed(id_hashes, _HASH),
        "phone_sealed": _fixed(phone_sealed, _PHONE_SEALED),
        "phone_hashes": _fixed(phone_hashes, _HASH),
        "from": stay[0],
        "until": stay[1],
        "now": now,
        "id_size": _ID_SEALED,
        "phone_size": _PHONE_SEALED,
        "hash_size": _HASH,
    }
    cards = {"first": first_card + start * per, "per": per, "ids": json.dumps(ids), "now": now}
    return partial(_write_batch, tenants, cards)


def _fixed(values: list[bytes], size: int) -> bytes:
    joined = b"".join(values)
    if len(joined) != size * len(values):
        raise AssertionError(f"expected {size}-byte values")
    return joined


def _cache(kib: int, tx: Transaction) -> None:
    tx.conn.execute(f"PRAGMA cache_size = -{int(kib)}")


def _write_rooms(labels: list[str], now: str, tx: Transaction) -> None:
    tx.conn.executemany(
        "INSERT OR IGNORE INTO rooms (room, created) VALUES (?, ?)", ((r, now) for r in labels)
    )


def _write_batch(tenants: dict[str, Any], cards: dict[str, Any], tx: Transaction) -> None:
    tx.conn.execute(
        "INSERT INTO tenants (id, name, id_number_sealed, id_number_hash, phone_sealed,"
        " phone_hash, room, valid_from, valid_until, status, source, created, updated)"
        " SELECT j.value ->> 0, j.value ->> 1,"
        " substr(:id_sealed, j.key * :id_size + 1, :id_size),"
        " substr(:id_hashes, j.key * :hash_size + 1, :hash_size),"
        " substr(:phone_sealed, j.key * :phone_size + 1, :phone_size),"
        " substr(:phone_hashes, j.key * :hash_size + 1, :hash_size),"
        " j.value ->> 2, :from, :until, 'active', 'city', :now, :now"
        " FROM json_each(:people) AS j",
        tenants,
    )
    # Every tenant's cards, generated in card-number order.
    tx.conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < :per)"
        " INSERT INTO cards (number, tenant_id, status, created, updated)"
        " SELECT :first + j.key * :per + k.i, j.value, 'active', :now, :now"
        " FROM json_each(:ids) AS j CROSS JOIN k",
        cards,
    )


_prefixes: dict[int, tuple[str, int]] = {}


def _id_number(n: int) -> str:
    """A valid resident ID number, one per n below 7.3e9 (every 32-bit card number).

    Region, birth date and the weighted sum of those 14 digits depend on n // 1000 only, so
    consecutive numbers share them; the sequence digits and check character are per number.
    """
    seq, day = n % 1000, n // 1000
    cached = _prefixes.get(day)
    if cached is None:
        born, region = _BORN + timedelta(days=day % _DAYS), 440000 + day // _DAYS
        text = f"{region:06d}{born:%Y%m%d}"
        cached = _prefixes[day] = (
            text,
            sum(w * int(c) for w, c in zip(ID_WEIGHTS[:14], text, strict=True)),
        )
        if len(_prefixes) > 4096:
            _prefixes.clear()
    text, total = cached
    total += 8 * (seq // 100) + 4 * (seq // 10 % 10) + 2 * (seq % 10)  # weights of digits 15-17
    return f"{text}{seq:03d}{CHECK_CHARS[total % 11]}"


def _phone(n: int) -> str:
    """A mainland mobile number, one per n below 5e9 (prefixes 15x-19x)."""
    return f"1{5 + n // 1_000_000_000}{n % 1_000_000_000:09d}"


def _room_label(r: int) -> str:
    """Floor then door, 20 doors a floor: "0101" ... "0120", "0201" ..."""
    return f"{r // 20 + 1:02d}{r % 20 + 1:02d}"


def _uuid4s(count: int) -> list[str]:
    """`count` random UUID4 strings, several times faster than str(uuid.uuid4()) each."""
    raw = os.urandom(16 * count).hex()
    ids = []
    for i in range(0, 32 * count, 32):
        h = raw[i : i + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return ids
