"""Police search (rental_platform/search): filters refused when bad, every filter kind on both
engines, pages by cursor, the ID number by keyed hash, names, pictures, CSV rows; and, on
PostgreSQL, each filter kind read through its own index."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from rental_platform.search import (
    CSV_HEADER,
    EntryFilter,
    FilterError,
    csv_row,
    entries_sql,
    entry_picture,
    export_pages,
    parse_entry_filter,
    reveal_id_number,
    search_entries,
)
from rental_platform.store import Store, set_building, store_batch
from rental_platform.store.sealing import Sealer
from web_security.id_numbers import id_check_char

from .conftest import event, message

GW_A, GW_B, GW_C = "gw-440305-0042", "gw-440305-0043", "gw-440306-0001"
BUILDING_A = "440305001002-0042"  # street 440305001, community 440305001002
BUILDING_B = "440305001003-0043"  # same street, another community
BUILDING_C = "440306001002-0001"  # street 001 too, but in another district
TENANT = "0b5d3c9e-5a43-4f8e-9d3c-4a8f1c2b7e61"
ID_NUMBER = "11010519491231002X"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
PURPOSE = "案件 2026-118"


def entry(gateway_id: str, seq: int, *, card: int, granted: bool = True, **fields: Any) -> Any:
    body = event(
        gateway_id, seq, type="access.granted" if granted else "access.denied",
        credential={"kind": "card", "number": card}, room="301",
        reason="tenant_card" if granted else "unknown_card", snapshot=None, **fields,
    )  # fmt: skip
    return message(gateway_id, "events", body)


def tenant_changed(gateway_id: str, seq: int, name: str) -> Any:
    tenant = {"id": TENANT, "name": name, "id_number": ID_NUMBER, "room": "301"}
    body = event(gateway_id, seq, type="tenant.changed", change="added", tenant=tenant)
    return message(gateway_id, "events", body)


@pytest.fixture
def city(store: Store) -> Store:
    """Three buildings: A and B on one street of district 440305, C on street 001 of 440306.

    A: seqs 1-6 entries of card 1001 (5 denied), a tenant registered at seq 7 with the ID
    number, its entries 8-9; B: card 2002 entries, one of them card 1001; C: card 1001.
    B also claims A's tenant id under another name, as a forging gateway would.
    """
    for gateway_id, code in ((GW_A, BUILDING_A), (GW_B, BUILDING_B), (GW_C, BUILDING_C)):
        set_building(store.db, gateway_id, code)
    digest = hashlib.sha256(JPEG).hexdigest()
    batch = [entry(GW_A, seq, card=1001, granted=seq != 5) for seq in range(1, 7)]
    batch += [tenant_changed(GW_A, 7, "王小明")]
    batch += [entry(GW_A, seq, card=3003, tenant_id=TENANT) for seq in (8, 9)]
    batch += [entry(GW_B, 1, card=2002), entry(GW_B, 2, card=1001), tenant_changed(GW_B, 3, "冒名")]
    batch += [entry(GW_C, 1, card=1001)]
    card = {"kind": "card", "number": 3003}
    picture = {"sha256": digest, "bytes": len(JPEG)}
    with_picture = event(GW_A, 10, type="access.granted", credential=card, snapshot=picture)
    batch += [message(GW_A, "events", with_picture), message(GW_A, f"snapshots/{GW_A}-10", JPEG)]
    store_batch(store, batch)
    return store


def search(store: Store, **params: str) -> list[dict[str, Any]]:
    entry_filter = parse_entry_filter({"purpose": PURPOSE, **params}, store.sealer)
    return search_entries(store, entry_filter).entries


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in entries]


SEALER = Sealer(bytes(32))


def another_id_number() -> str:
    """A valid ID number nobody registered."""
    return "11010519491231003" + id_check_char("11010519491231003")


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"street": "001"}, "street", "street_code"),  # a street code alone, in every district
        ({"community": "440305001"}, "community", "community_code"),
        ({"building": "440305001002-42"}, "building", "building_code"),
        ({"street": "440305001", "building": "440306001002-0001"}, "building", "outside_area"),
        (
            {"since": "2026-03-02T00:00Z", "until": "2026-03-01T00:00Z"},
            "until",
            "until_before_since",
        ),
        ({"since": "2026-03-01T08:00"}, "since", "time_offset"),
        ({"until": "yesterday"}, "until", "time"),
        ({"result": "opened"}, "result", "result"),
        ({"limit": "501"}, "limit", "limit"),
        ({"limit": "0"}, "limit", "limit"),
        ({"card": "4294967296"}, "card", "card"),
        ({"card": "１２３"}, "card", "card"),
        ({"id_number": "110105194912310021"}, "id_number", "id_check_digit"),
        ({"id_number": "1101051949123100"}, "id_number", "id_number"),
        ({"room": "301"}, "room", "room_needs_building"),
        ({"gateway_id": "GW 1"}, "gateway_id", "gateway_id"),
        ({"stret": "440305001"}, "stret", "unknown_filter"),
        ({"cursor": "AAAA"}, "cursor", "cursor"),
    ],
)
def test_a_bad_filter_is_refused_naming_its_field(
    params: dict[str, str], field: str, code: str
) -> None:
    with pytest.raises(FilterError) as refused:
        parse_entry_filter({"purpose": PURPOSE, **params}, SEALER)
    assert (refused.value.field, refused.value.code) == (field, code)
    assert refused.value.message


def test_purpose_is_required_and_a_filter_given_twice_is_refused() -> None:
    for purpose in ("", "  ", "\u200b\u3000"):
        with pytest.raises(FilterError) as refused:
            parse_entry_filter({"purpose": purpose}, SEALER)
        assert refused.value.code == "purpose_required"
    with pytest.raises(FilterError) as refused:
        parse_entry_filter([("purpose", PURPOSE), ("card", "1"), ("card", "2")], SEALER)
    assert refused.value.code == "repeated"


def test_the_id_number_is_kept_only_as_its_keyed_hash() -> None:
    entry_filter = parse_entry_filter({"purpose": PURPOSE, "id_number": "110105 19491231002x"},
                                      SEALER)  # fmt: skip
    assert entry_filter.id_hash == SEALER.id_number_hash(ID_NUMBER)
    assert ID_NUMBER not in repr(entry_filter)
    assert ID_NUMBER not in json.dumps(entry_filter.audit_params())
    assert entry_filter.audit_params()["id_number"] == "1101**********002X"


def test_each_filter_kind_finds_exactly_its_entries_newest_first(city: Store) -> None:
    a_entries = [f"{GW_A}-{s}" for s in (10, 9, 8, 6, 5, 4, 3, 2, 1)]
    assert ids(search(city, building=BUILDING_A)) == a_entries
    assert ids(search(city, gateway_id=GW_A)) == a_entries
    assert ids(search(city, community="440305001002")) == a_entries
    # The street holds A and B; street 001 of district 440306 is another street.
    assert set(ids(search(city, street="440305001"))) == {*a_entries, f"{GW_B}-1", f"{GW_B}-2"}
    assert set(ids(search(city, card="1001"))) == {
        *(f"{GW_A}-{s}" for s in range(1, 7)),
        f"{GW_B}-2",
        f"{GW_C}-1",
    }
    assert ids(search(city, card="1001", result="denied")) == [f"{GW_A}-5"]
    assert ids(search(city, building=BUILDING_B, room="301")) == [f"{GW_B}-2", f"{GW_B}-1"]
    everything = search(city)
    assert len(everything) == 12  # entries only: no tenant.changed among them
    # Times: since inclusive, until exclusive; each entry's ts is START + seq ms.
    stamps = sorted({e["ts"] for e in everything})
    timed = search(city, since=stamps[1], until=stamps[3])
    assert {e["ts"] for e in timed} == {stamps[1], stamps[2]}
    assert everything[0]["building"] in (BUILDING_A, BUILDING_B, BUILDING_C)


def test_pages_follow_the_cursor_without_repeats_or_gaps(city: Store) -> None:
    whole = ids(search(city, street="440305001"))
    entry_filter = parse_entry_filter({"purpose": PURPOSE, "street": "440305001", "limit": "4"},
                                      city.sealer)  # fmt: skip
    pages = list(export_pages(city, entry_filter, page_size=4))
    assert [len(p.entries) for p in pages] == [4, 4, 3]
    assert pages[-1].next_cursor is None
    assert [e["event_id"] for p in pages for e in p.entries] == whole
    first = search_entries(city, entry_filter)
    assert first.next_cursor is not None
    following = search(city, street="440305001", limit="4", cursor=first.next_cursor)
    assert ids(following) == whole[4:8]
    for other in ({"street": "440305001", "result": "granted"}, {"card": "1001"}):
        with pytest.raises(FilterError) as refused:
            parse_entry_filter({"purpose": PURPOSE, "cursor": first.next_cursor, **other},
                               city.sealer)  # fmt: skip
        assert refused.value.code == "cursor"


def test_an_id_number_finds_its_tenants_entries_and_names_come_from_their_own_gateway(
    city: Store,
) -> None:
    found = search(city, id_number=ID_NUMBER.lower())
    # A's tenant (seqs 8, 9); B's tenant.changed names the same id but B has no entries of it.
    assert ids(found) == [f"{GW_A}-9", f"{GW_A}-8"]
    assert {e["name"] for e in found} == {"王小明"}  # never B's "冒名"
    assert search(city, id_number=another_id_number()) == []
    assert reveal_id_number(city, GW_A, TENANT) == ID_NUMBER
    assert reveal_id_number(city, GW_C, TENANT) is None
    # Combined with another filter, still through the tenant's entries.
    assert search(city, id_number=ID_NUMBER, gateway_id=GW_B) == []


def test_a_gateway_filter_must_name_a_known_gateway_within_the_area(city: Store) -> None:
    with pytest.raises(FilterError) as refused:
        search(city, gateway_id="gw-unknown-1")
    assert refused.value.code == "unknown_gateway"
    with pytest.raises(FilterError) as refused:
        search(city, gateway_id=GW_C, street="440305001")
    assert refused.value.code == "outside_area"


def test_an_entry_picture_is_given_only_when_it_is_the_one_the_entry_names(city: Store) -> None:
    picture = entry_picture(city, f"{GW_A}-10")
    assert picture is not None
    assert (picture.jpeg, picture.gateway_id) == (JPEG, GW_A)
    assert entry_picture(city, f"{GW_A}-9") is None  # no picture
    # A picture sent for another entry under this one's id does not pass for it.
    store_batch(city, [message(GW_A, f"snapshots/{GW_A}-8", JPEG)])
    assert entry_picture(city, f"{GW_A}-8") is None
    with pytest.raises(FilterError):
        entry_picture(city, "../../etc/passwd")


def test_csv_rows_have_a_chinese_header_and_the_entry_in_words(city: Store) -> None:
    denied = search(city, card="1001", result="denied")
    row = csv_row(denied[0])
    assert len(row) == len(CSV_HEADER)
    assert CSV_HEADER[0] == "时间"
    assert row[1:6] == [BUILDING_A, GW_A, "main", "拒绝", "未登记的卡"]
    assert [row[8], *row[10:]] == [1001, f"{GW_A}-5", 5]


PLANS = {
    "street": ({"street": "440305001"}, "entries_street"),
    "community": ({"community": "440305001002"}, "entries_community"),
    "building": ({"building": BUILDING_A}, "entries_building"),
    "room": ({"building": BUILDING_A, "room": "301"}, "entries_room"),
    "gateway": ({"gateway_id": GW_A}, "entries_gateway"),
    "card": ({"card": "1001", "result": "denied"}, "entries_card"),
    "time": ({"since": "2026-01-01T00:00:00Z"}, "entries_ts"),
    "id_number": ({"id_number": ID_NUMBER}, "entries_tenant"),
}


@pytest.mark.parametrize("platform_db", ["postgresql"], indirect=True)
def test_every_filter_kind_reads_through_its_own_index(city: Store) -> None:
    """The plan, with sequential scans priced out as on a table of millions of rows: each
    filter kind is read through its own index on every partition. (Whether the order then
    comes from the index too depends on the table's statistics: bench/police_search.py
    checks the plans at 20 M rows.)"""
    db = city.db
    for params, index in PLANS.values():
        query = entries_sql(city, parse_entry_filter({"purpose": PURPOSE, **params}, city.sealer))
        assert query is not None
        with db.transaction():
            db.execute("SET LOCAL enable_seqscan = off")
            db.execute("SET LOCAL enable_bitmapscan = off")
            plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + query[0], query[1]))
        used = set(re.findall(r"Index Scan(?: Backward)? using (\S+)", plan))
        partitions = {
            row[0]
            for row in db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = ?::regclass",
                (index,),
            ).fetchall()
        }
        assert used, plan
        assert used <= partitions, plan
        assert "Seq Scan" not in plan, plan


def test_a_filter_object_is_frozen() -> None:
    entry_filter = EntryFilter(purpose=PURPOSE)
    with pytest.raises(AttributeError):
        entry_filter.card = 1  # type: ignore[misc]
