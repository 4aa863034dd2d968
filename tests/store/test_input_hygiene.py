"""What a person may type into a name, a room or a card number, wherever it comes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.store import RegistryInvalid, Store, ValidationError
from gateway.store.validation import (
    normalize_id_number,
    normalize_name,
    normalize_phone,
    normalize_room,
)
from gateway.tenant_csv import CsvImportError, import_tenants

from .factories import tenant
from .test_registry_sync import city
from .test_tenant_csv import HEADER, problems, row, write

# The messages, written out: the page translates them by their text (gateway/web/i18n.py).
INVISIBLE = "contains an invisible or direction-changing character; type it in again"
NOT_TEXT = "has no visible letter or digit"
REPLACEMENT = "contains \ufffd, a character lost to a wrong encoding; type it in again"
NAME_FORMULA = "must not start with =, +, - or @ (a spreadsheet would run it as a formula)"
ROOM_FORMULA = (
    "must not start with =, + or @, nor with - unless it is a floor below ground such as -1"
    " or -1-02 (a spreadsheet would run it as a formula)"
)
OTHER_DIGITS = "must be typed with the digits 0-9, not full-width or other digits"
UTF8_THEN_OTHER = (
    "is not UTF-8, unlike the lines above (GB18030 text pasted in, or a damaged byte);"
    " save the whole file again as 'CSV UTF-8'"
)
GB18030_THEN_UTF8 = (
    "is UTF-8, unlike the lines above (GB18030); save the whole file again as 'CSV UTF-8'"
)

HIDDEN = {
    "right-to-left override": "张\u202e三丰",
    "right-to-left isolate": "\u2067王五\u2069",
    "left-to-right mark": "李\u200e四",
    "C1 control (NEL)": "陈\x85静",
    "C1 control (CSI)": "陈\x9b静",
    "zero-width space only": "\u200b\u200b",
    "zero-width joiner": "刘\u200d洋",
    "byte order mark": "赵\ufeff六",
    "Hangul filler only": "\u3164",
    "line separator": "周\u2028七",
    "lone surrogate": "吴\ud800八",
    "combining mark only": "\u0301",
    "replacement character": "郑\ufffd九",
}


def refused(call: Callable[..., object], *args: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("field", ["name", "room"])
@pytest.mark.parametrize("text", HIDDEN.values(), ids=HIDDEN.keys())
def test_names_and_rooms_that_hide_or_reorder_text_are_refused(
    store: Store, field: str, text: str
) -> None:
    expected = (INVISIBLE, NOT_TEXT, REPLACEMENT)
    # The page and the API.
    record = replace(tenant(1), name=text) if field == "name" else replace(tenant(1), room=text)
    error = refused(store.add_tenant, record)
    assert (error.field, error.message in expected) == (field, True)
    # The city's registry.apply.
    with pytest.raises(RegistryInvalid) as caught:
        store.apply_registry(1, None, [city(1, **{field: text})])
    [problem] = caught.value.problems
    assert isinstance(problem.error, ValidationError)
    assert (problem.error.field, problem.error.message in expected) == (field, True)
    assert store.search_tenants() == []


@pytest.mark.parametrize("text", [t for t in HIDDEN.values() if "\ud800" not in t])
def test_the_csv_import_refuses_them_too(store: Store, tmp_path: Path, text: str) -> None:
    [report] = problems(store, write(tmp_path, f"{HEADER}\n{row(1, name=text)}\n"))
    assert report.startswith("line 2: name: ")


def test_real_names_and_rooms_still_pass() -> None:
    for name in ("阿依古丽·买买提", "欧阳娜娜", "O'Brien", "Zoë Li", "𠀀𪚥"):
        assert normalize_name(f" {name} ") == name
    for room in ("0301", "B1-02", "-1", "-1-02", "-2层", "3号楼1201"):
        assert normalize_room(room) == room


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://x","张三")', "+1", "-2+3+cmd|' /C calc'!A0", "@SUM(1)"]
)
def test_a_name_that_starts_a_spreadsheet_formula_is_refused(store: Store, name: str) -> None:
    error = refused(store.add_tenant, replace(tenant(1), name=name))
    assert (error.field, error.message) == ("name", NAME_FORMULA)
    assert store.search_tenants() == []


@pytest.mark.parametrize("room", ["=1+1", "+86", "@A1", "-1+cmd|' /C calc'!A0", "-(1)", "- 1"])
def test_a_room_that_starts_a_formula_is_refused_but_a_basement_is_not(
    store: Store, room: str
) -> None:
    error = refused(store.add_tenant, replace(tenant(1), room=room))
    assert (error.field, error.message) == ("room", ROOM_FORMULA)
    basement = store.add_tenant(replace(tenant(1), room="-1-02"))
    assert basement.room == "-1-02"


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("²", OTHER_DIGITS),  # str.isdigit() says yes, int() says no
        ("１２３", OTHER_DIGITS),  # int() reads it as 123
        ("١٢٣", OTHER_DIGITS),  # Arabic-Indic
        ("一二三", OTHER_DIGITS),
        ("1" * 5000, f"{'1' * 17}… is above 4294967295 (32 bits)"),  # int() refuses 4,300+ digits
    ],
)
def test_a_csv_card_number_in_other_digits_is_refused_with_a_reason(
    store: Store, tmp_path: Path, card: str, message: str
) -> None:
    assert problems(store, write(tmp_path, f"{HEADER}\n{row(1, card=card)}\n")) == [
        f"line 2: card: {message}"
    ]


def test_other_digits_in_id_numbers_and_phones_say_why() -> None:
    assert (
        refused(normalize_id_number, "４４０３０５１９９００１０１１２３４").message == OTHER_DIGITS
    )
    assert refused(normalize_phone, "１３８００１３８０００").message == OTHER_DIGITS


def test_a_file_mixing_utf8_and_gb18030_is_refused_at_the_line_it_changes(
    store: Store, tmp_path: Path
) -> None:
    # Rows pasted from a GB18030 file into a UTF-8 one (or the other way round) decode
    # either way into plausible Chinese: the names would be imported wrong, silently.
    utf8 = [f"{row(n, name=name)}\n".encode() for n, name in enumerate(["张三", "李四"], 1)]
    gb = [f"{row(n, name=name)}\n".encode("gb18030") for n, name in [(3, "王五"), (4, "赵六")]]
    header = f"{HEADER}\n".encode()
    path = tmp_path / "mixed.csv"
    path.write_bytes(header + b"".join(utf8 + gb))
    with pytest.raises(CsvImportError) as caught:
        import_tenants(store, path)
    assert [str(e) for e in caught.value.errors] == [f"line 4: file: {UTF8_THEN_OTHER}"]
    path.write_bytes(header + b"".join(gb + utf8))
    with pytest.raises(CsvImportError) as caught:
        import_tenants(store, path)
    assert [str(e) for e in caught.value.errors] == [f"line 4: file: {GB18030_THEN_UTF8}"]
    assert store.search_tenants() == []
