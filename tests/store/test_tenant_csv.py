"""Tenant CSV import: encodings, line-numbered errors, all-or-nothing, updates, speed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.store import Store
from gateway.tenant_csv import CsvImportError, ImportResult, import_tenants

from .factories import id_number, phone

HEADER = "room,name,id_number,phone,card,valid_from,valid_until"


def row(n: int, *, room: str = "0301", name: str | None = None, card: str | None = None) -> str:
    cards = str(1000 + n) if card is None else card
    return f"{room},{name or f'租客{n}'},{id_number(n)},{phone(n)},{cards},2026-01-01,2026-12-31"


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "tenants.csv"
    path.write_bytes(text.encode(encoding))
    return path


def problems(store: Store, path: Path) -> list[str]:
    with pytest.raises(CsvImportError) as caught:
        import_tenants(store, path)
    # All or nothing: no tenant, no card, no event.
    assert store.search_tenants() == []
    assert store.pending_events() == []
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_imports_every_supported_encoding(store: Store, tmp_path: Path, encoding: str) -> None:
    text = "\r\n".join([HEADER, row(1, name="张三"), row(2, name="欧阳娜娜", card="7;8")]) + "\r\n"
    result = import_tenants(store, write(tmp_path, text, encoding))
    assert result == ImportResult(added=2, updated=0, cards=3)
    names = sorted(t.name for t in store.search_tenants())
    assert names == ["张三", "欧阳娜娜"]
    grant = store.card_lookup(8)
    assert grant is not None
    assert grant.room == "0301"
    assert len(store.pending_events()) == 2  # the city learns both registrations


def test_bad_rows_are_all_reported_by_line_and_nothing_is_written(
    store: Store, tmp_path: Path
) -> None:
    lines = [
        HEADER,
        row(1),
        row(2).replace(id_number(2), id_number(2)[:17] + "0"),
        row(3).replace(phone(3), "12345"),
        row(4).replace("2026-01-01", "2026/1/1"),
        row(5).replace("2026-12-31", "2025-12-31"),
        row(6, card="12a"),
        row(7, card=str(2**32)),
        "0301,only,three",
    ]
    expected_digit = id_number(2)[17]
    assert problems(store, write(tmp_path, "\n".join(lines))) == [
        f"line 3: id_number: check digit is wrong (expected {expected_digit}); mistyped?",
        "line 4: phone: must be an 11-digit mainland mobile number starting with 1",
        "line 5: valid_from: '2026/1/1' is not a date written YYYY-MM-DD",
        "line 6: valid_until: 2025-12-31 is before valid_from",
        "line 7: card: '12a' is not a decimal card number",
        "line 8: card: 4294967296 is above 4294967295 (32 bits)",
        "line 9: row: has 3 fields, the header has 7",
    ]


def test_quoted_multi_line_field_keeps_line_numbers_right(store: Store, tmp_path: Path) -> None:
    lines = [HEADER, row(1, card='"11;\n12;\n13"'), row(2, name="  ")]
    assert problems(store, write(tmp_path, "\n".join(lines))) == ["line 5: name: is required"]
    # The same record without the bad row imports, three cards from one quoted cell.
    result = import_tenants(store, write(tmp_path, "\n".join(lines[:2])))
    assert result == ImportResult(added=1, updated=0, cards=3)


def test_duplicates_inside_the_file(store: Store, tmp_path: Path) -> None:
    lines = [HEADER, row(1, card="5"), row(2, card="6;5"), row(1, room="0402", card="")]
    assert problems(store, write(tmp_path, "\n".join(lines))) == [
        "line 3: card: card 5 is already on line 2",
        "line 4: id_number: the same ID number is already on line 2",
    ]


def test_card_held_by_another_tenant_in_the_store(store: Store, tmp_path: Path) -> None:
    import_tenants(store, write(tmp_path, "\n".join([HEADER, row(1, card="5")])))
    before = store.pending_events()
    lines = [HEADER, row(2, card="6"), row(3, card="5"), row(4).replace(phone(4), "x")]
    with pytest.raises(CsvImportError) as caught:
        import_tenants(store, write(tmp_path, "\n".join(lines)))
    assert [str(e) for e in caught.value.errors] == [
        "line 3: card: card 5 belongs to another tenant (room 0301, card active)",
        "line 4: phone: must be an 11-digit mainland mobile number starting with 1",
    ]
    assert len(store.search_tenants()) == 1
    assert store.card_lookup(6) is None
    assert store.pending_events() == before


def test_existing_tenant_is_updated_not_duplicated(store: Store, tmp_path: Path) -> None:
    first = "\n".join([HEADER, row(1, card="5"), row(2, card="")])
    assert import_tenants(store, write(tmp_path, first)) == ImportResult(2, 0, 1)
    second = "\n".join([HEADER, row(1, room="0502", card="5;9"), row(3)])
    assert import_tenants(store, write(tmp_path, second)) == ImportResult(1, 1, 2)
    (moved,) = store.search_tenants(room="0502")
    assert [c.number for c in moved.cards] == [5, 9]
    assert len(store.search_tenants()) == 3


def test_header_is_matched_loosely(store: Store, tmp_path: Path) -> None:
    text = "Room, NAME ,id_number,phone,card,valid_from,valid_until,,\n" + row(1) + ",,"
    assert import_tenants(store, write(tmp_path, text)).added == 1  # case, spaces, Excel padding
    order = "card,valid_until,valid_from,phone,id_number,name,room\n"
    values = f"7;8,2026-12-31,2026-01-01,{phone(2)},{id_number(2)},李四,0502"
    assert import_tenants(store, write(tmp_path, order + values)).cards == 2


def test_header_problems(store: Store, tmp_path: Path) -> None:
    bad = "room,name,id_number,mobile,card,valid_from,valid_from\n" + row(2)
    assert problems(store, write(tmp_path, bad)) == [
        "line 1: header: column 'valid_from' appears twice",
        "line 1: header: missing column 'phone'",
        "line 1: header: missing column 'valid_until'",
        "line 1: header: unknown column 'mobile' (expected room, name, id_number, phone, card,"
        " valid_from, valid_until)",
    ]


def test_excel_artifacts(store: Store, tmp_path: Path) -> None:
    text = "\n".join([HEADER, ",,,,,,", "", row(1).replace(id_number(1), "4.40305E+17")])
    assert problems(store, write(tmp_path, text)) == [
        "line 4: id_number: looks like a number Excel rounded; format the column as text"
    ]


def test_undecodable_and_utf16_files_are_refused(store: Store, tmp_path: Path) -> None:
    utf16 = write(tmp_path, HEADER + "\n" + row(1), "utf-16")
    assert problems(store, utf16) == [
        "line 1: file: is UTF-16 ('Unicode text'); save it as 'CSV UTF-8' or 'CSV'"
    ]
    rows = [row(n, name="张三丰") for n in range(1, 6)]
    damaged = ("\n".join([HEADER, *rows]) + "\n").encode() + b"\xff\n"
    (tmp_path / "d.csv").write_bytes(damaged)
    assert problems(store, tmp_path / "d.csv") == [
        "line 7: file: is UTF-8 with an invalid byte here"
    ]
    (tmp_path / "g.csv").write_bytes(HEADER.encode() + b"\n\x81\xff")
    assert problems(store, tmp_path / "g.csv") == [
        "line 2: file: is neither UTF-8 nor GB18030 (undecodable bytes here)"
    ]


def test_empty_file_and_header_only(store: Store, tmp_path: Path) -> None:
    assert problems(store, write(tmp_path, "")) == [
        "line 1: file: is empty; the first line must be the header"
    ]
    assert import_tenants(store, write(tmp_path, HEADER + "\n")) == ImportResult(0, 0, 0)


def test_progress_bar_goes_to_stderr(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_tenants(store, write(tmp_path, "\n".join([HEADER, row(1)])), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "rows" in captured.err


def test_twenty_thousand_rows(store: Store, tmp_path: Path) -> None:
    lines = [HEADER] + [
        row(n, room=f"{n % 500:04d}", card=f"{n};{100000 + n}") for n in range(20_000)
    ]
    path = write(tmp_path, "\n".join(lines), "gb18030")
    start = time.perf_counter()
    result = import_tenants(store, path)
    elapsed = time.perf_counter() - start
    print(f"imported 20,000 rows in {elapsed:.2f} s")
    assert result == ImportResult(added=20_000, updated=0, cards=40_000)
    start = time.perf_counter()
    assert import_tenants(store, path) == ImportResult(added=0, updated=20_000, cards=0)
    print(f"re-imported (all unchanged) in {time.perf_counter() - start:.2f} s")
    assert elapsed < 30
