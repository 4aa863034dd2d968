"""Bulk tenant import from CSV (SPEC 5): every row is valid and applied, or nothing is written.

    result = import_tenants(store, Path("tenants.csv"), progress=sys.stderr.isatty())

Columns `room,name,id_number,phone,card,valid_from,valid_until` in any order; `card` may hold
several numbers separated by `;`. A person already registered (same ID number) is updated,
not added twice. Problems are reported all at once as `line N: column: message`, N being the
line of the file where the record starts, so a spreadsheet user can find it.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Never, TypeVar

from tqdm import tqdm

from gateway.store import (
    Problem,
    Store,
    TenantCreate,
    UpsertRejected,
    ValidationError,
    normalize_id_number,
    normalize_phone,
)
from gateway.store.validation import (
    normalize_name,
    normalize_room,
    parse_card_number,
    refusal,
)

T = TypeVar("T")
V = TypeVar("V")

COLUMNS = ("room", "name", "id_number", "phone", "card", "valid_from", "valid_until")
# The same columns as a Chinese sheet heads them (SPEC 5).
CHINESE_COLUMNS = dict(zip(("房间", "姓名", "身份证号", "手机", "卡号", "租期开始", "租期结束"),
                           COLUMNS, strict=True))  # fmt: skip
MAX_FILE_BYTES = 50 * 1024 * 1024
# A file from the page is written this many rows per transaction once every row is checked:
# the door part's journal commits wait for one batch's write lock, not for the whole file's
# (about 2.5 s for 100,000 rows on an idle machine here, 49 s under bench/door_isolation's
# loads). 2,000 rows still held it up to 0.94 s under those loads (the web part, niced,
# is preempted while it holds the lock); 250 rows keep it near 0.1 s. `gateway tenants
# import` stays one transaction (SPEC 1: all rows or none, even across a power cut).
WEB_BATCH_ROWS = 250
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CARD_SEPARATORS = re.compile(r"[;；]")  # Chinese input methods type the full-width one


@dataclass(frozen=True, slots=True, order=True)
class RowError:
    """One problem: the file line where the record starts, the column, what is wrong."""

    line: int
    column: str
    message: str
    code: str | None = field(default=None, compare=False)  # the page's words for it, by key
    params: dict[str, object] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.message}"


class CsvImportError(ValueError):
    """The file was refused; `errors` lists every problem found. Nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What a successful import did; the fields after `cards` are for the operator, not compared.

    `updated` counts every row of a person already registered, `unchanged` those of them that
    were already exactly as listed (nothing written, nothing announced).
    """

    added: int
    updated: int
    cards: int
    unchanged: int = field(default=0, compare=False)
    journaled: int = field(default=0, compare=False)  # tenant.changed events for the city
    lock_seconds: float = field(default=0.0, compare=False)  # door events waited at most this


def import_tenants(store: Store, path: Path, progress: bool = False) -> ImportResult:
    """Validate the whole file, then apply it all or nothing; raise CsvImportError if not.

    The store prepares every row (hashing, matching, sealing) before it takes the write lock,
    which it then holds only for the inserts: the doors keep working during an import.
    """
    return import_tenant_data(store, path.read_bytes(), progress)


def import_tenant_data(
    store: Store, data: bytes, progress: bool = False, batch: int | None = None
) -> ImportResult:
    """`import_tenants` for a file's bytes (an upload on the web page); with `batch`, every
    row is checked, then written `batch` rows per transaction (`Store.upsert_tenants`)."""
    if len(data) > MAX_FILE_BYTES:
        raise CsvImportError([_row(1, "file", "file_too_large", max=MAX_FILE_BYTES)])
    rows, errors = parse_tenants(decode(data), progress)
    if not rows:
        if errors:
            raise CsvImportError(errors)
        return ImportResult(0, 0, 0)
    # Rows that parsed still go through the store when others did not (checking only), so
    # conflicts with the registry (a card held by someone else) are reported in the same
    # run, not the next one.
    bars = _StageBars() if progress else None
    try:
        result = store.upsert_tenants(
            [tenant for _, tenant in rows], check_only=bool(errors), progress=bars, batch=batch
        )
    except UpsertRejected as exc:
        raise CsvImportError(errors + [_row_error(rows, p) for p in exc.problems]) from None
    finally:
        if bars is not None:
            bars.close()
    if errors:
        raise CsvImportError(errors)
    return ImportResult(
        result.added, result.updated, result.cards_added, result.unchanged, result.journaled,
        result.lock_seconds,
    )  # fmt: skip


def _row_error(rows: list[tuple[int, TenantCreate]], problem: Problem) -> RowError:
    error = problem.error
    message = error.message if isinstance(error, ValidationError) else str(error)
    return RowError(rows[problem.index][0], error.field or "row", message, error.code,
                    error.params)  # fmt: skip


# Reasons a file is refused before its rows are read: fixed texts the page translates.
# What a refused file or row is told, in English (the CLI, the API), by the key the page finds
# its own words under (gateway/web/i18n.py, "refusal.KEY").
REFUSALS = {
    "file_too_large": "is larger than {max} bytes",
    "utf16": "is UTF-16 ('Unicode text'); save it as 'CSV UTF-8' or 'CSV'",
    "utf8_damaged": "is UTF-8 with an invalid byte here",
    "utf8_then_other": (
        "is not UTF-8, unlike the lines above (GB18030 text pasted in, or a damaged byte);"
        " save the whole file again as 'CSV UTF-8'"
    ),
    "gb18030_then_utf8": (
        "is UTF-8, unlike the lines above (GB18030); save the whole file again as 'CSV UTF-8'"
    ),
    "undecodable": "is neither UTF-8 nor GB18030 (undecodable bytes here)",
    "empty_file": "is empty; the first line must be the header",
    "not_csv": "is not valid CSV",
    "missing_column": "missing column {column!r}",
    "unknown_column": (
        "unknown column {typed!r}; the header is room,name,id_number,phone,card,valid_from,"
        "valid_until or 房间,姓名,身份证号,手机,卡号,租期开始,租期结束"
    ),
    "column_twice": "column {column!r} appears twice",
    "field_count": "has {count} fields, the header has {columns}",
    "same_id_number": "the same ID number is already on line {earlier}",
    "same_card": "card {number} is already on line {earlier}",
}


def _row(line: int, where: str, code: str, /, **params: object) -> RowError:
    return RowError(line, where, REFUSALS[code].format(**params), code, params)

# What a line of this file holds when it is UTF-8: ASCII, Chinese characters and punctuation,
# full-width forms, Latin letters with accents. GB18030 bytes read as UTF-8 only by chance,
# and then mostly as other scripts, so a line that fits and holds a Chinese character is UTF-8.
_UTF8_TEXT = re.compile(
    r"[\x00-\x7f\u00b7\u00c0-\u024f\u2014-\u2026\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*"
)
_CHINESE = re.compile(r"[\u4e00-\u9fff]")


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 as saved by Excel on Chinese Windows.

    A file that is not cleanly one of the two is refused, naming the line where it changes:
    rows pasted from another file would otherwise be read in the wrong encoding, and their
    names imported as plausible-looking wrong characters.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvImportError([_row(1, "file", "utf16")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if data.startswith(b"\xef\xbb\xbf"):
            raise _refused(data, exc.start, "utf8_damaged") from None
    first_utf8 = first_other = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        if _is_utf8_chinese(line):
            first_utf8 = first_utf8 or number
        else:
            first_other = first_other or number
        if first_utf8 and first_other:
            break
    if first_utf8 and first_utf8 < first_other:
        line = data.split(b"\n", first_other)[first_other - 1]
        reason = "utf8_then_other" if _decodes(line, "gb18030") else "utf8_damaged"
        raise CsvImportError([_row(first_other, "file", reason)])
    if first_other and first_other < first_utf8:
        raise CsvImportError([_row(first_utf8, "file", "gb18030_then_utf8")])
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise _refused(data, exc.start, "undecodable") from None


def _is_utf8_chinese(line: bytes) -> bool:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(_UTF8_TEXT.fullmatch(text) and _CHINESE.search(text))


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _refused(data: bytes, offset: int, reason: str) -> CsvImportError:
    return CsvImportError([_row(data[:offset].count(b"\n") + 1, "file", reason)])


def parse_tenants(
    text: str, progress: bool = False
) -> tuple[list[tuple[int, TenantCreate]], list[RowError]]:
    """Check every record; return the valid ones with their line numbers, and every problem."""
    records = _records(text)
    header = next(records, None)
    if header is None:
        return [], [_row(1, "file", "empty_file")]
    header_line, names = header
    columns, errors = _check_header(header_line, names)
    if errors:
        return [], errors
    rows: list[tuple[int, TenantCreate]] = []
    first_seen: dict[tuple[str, object], int] = {}
    for line, cells in _progress(records, progress, "checking"):
        tenant, row_errors = _parse_row(line, columns, cells)
        if tenant is not None:
            row_errors += _duplicates(line, tenant, first_seen)
        if row_errors:
            errors += row_errors
        elif tenant is not None:
            rows.append((line, tenant))
    return rows, errors


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvImportError([_row(start, "row", "not_csv")]) from exc
        end = reader.line_num
        if any(cell.strip() for cell in cells):  # Excel leaves rows of empty cells behind
            yield start, cells


def _check_header(line: int, names: list[str]) -> tuple[list[str], list[RowError]]:
    """The columns by their SPEC 5 names, whichever of the two header rows the file has."""
    typed = [name.strip() for name in names]
    while typed and not typed[-1]:
        typed.pop()  # trailing empty columns from a spreadsheet
    columns = [CHINESE_COLUMNS.get(name, name.lower()) for name in typed]
    errors = [
        _row(line, "header", "missing_column", column=name)
        for name in COLUMNS
        if name not in columns
    ]
    errors += [
        _row(line, "header", "unknown_column", typed=name)
        for name, column in dict(zip(typed, columns, strict=True)).items()
        if column not in COLUMNS
    ]
    errors += [
        _row(line, "header", "column_twice", column=name)
        for name in COLUMNS
        if columns.count(name) > 1
    ]
    return columns, errors


def _parse_row(
    line: int, columns: list[str], cells: list[str]
) -> tuple[TenantCreate | None, list[RowError]]:
    extra = cells[len(columns) :]
    if len(cells) < len(columns) or any(cell.strip() for cell in extra):
        count = len(cells)
        return None, [_row(line, "row", "field_count", count=count, columns=len(columns))]
    raw = dict(zip(columns, cells, strict=False))
    errors: list[RowError] = []

    def check(column: str, parse: Callable[[str, str], V]) -> V | None:
        try:
            return parse(raw[column], column)
        except ValidationError as exc:
            errors.append(RowError(line, column, exc.message, exc.code, exc.params))
            return None

    room = check("room", normalize_room)
    name = check("name", normalize_name)
    id_number = check("id_number", normalize_id_number)
    phone = check("phone", normalize_phone)
    cards = check("card", _card_numbers)
    valid_from = check("valid_from", _date)
    valid_until = check("valid_until", _date)
    if (
        room is None
        or name is None
        or id_number is None
        or phone is None
        or cards is None
        or valid_from is None
        or valid_until is None
    ):
        return None, errors
    if valid_until < valid_from:
        refused = refusal("valid_until", "ends_before_start", valid_until=valid_until,
                          valid_from=valid_from)
        return None, [RowError(line, "valid_until", refused.message, refused.code,
                               refused.params)]  # fmt: skip
    tenant = TenantCreate(
        name=name,
        id_number=id_number,
        phone=phone,
        room=room,
        valid_from=valid_from,
        valid_until=valid_until,
        cards=cards,
    )
    return tenant, []


def _card_numbers(value: str, field: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for piece in _CARD_SEPARATORS.split(value):
        if not piece.strip():
            continue
        number = parse_card_number(piece, field)
        if number in numbers:
            raise refusal(field, "card_twice", number=number)
        numbers.append(number)
    return tuple(numbers)


def _date(value: str, field: str) -> date:
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise refusal(field, "not_a_date", typed=repr(text)) from None
    raise refusal(field, "date_shape", typed=repr(text))


def _duplicates(
    line: int, tenant: TenantCreate, first_seen: dict[tuple[str, object], int]
) -> list[RowError]:
    """The same person or card twice in one file is a mistake to fix, not to guess at."""
    errors = []
    keys: list[tuple[str, object]] = [("id_number", tenant.id_number)]
    keys += [("card", number) for number in tenant.cards]
    for column, value in keys:
        earlier = first_seen.setdefault((column, value), line)
        if earlier != line:
            if column == "id_number":
                errors.append(_row(line, column, "same_id_number", earlier=earlier))
            else:
                errors.append(_row(line, column, "same_card", number=value, earlier=earlier))
    return errors


def _progress(items: Iterable[T], enabled: bool, what: str) -> Iterable[T]:
    if not enabled:
        return items
    return tqdm(items, desc=what, unit=" rows", file=sys.stderr, leave=False)


class _StageBars:
    """The store's progress(stage, done, total) as one tqdm bar per stage, on stderr."""

    def __init__(self) -> None:
        self._stage = ""
        self._bar: tqdm[Never] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bar
        if stage != self._stage or bar is None:
            self.close()
            self._stage = stage
            bar = self._bar = tqdm(
                total=total, desc=stage, unit=" rows", file=sys.stderr, leave=False
            )
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
