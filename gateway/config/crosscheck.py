"""Rules that span entries of the config: unique names, known buses, one address per reader.

They read the plain TOML data, so `load_config` can report them next to the field errors
of a file that fails in several places at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence


def cross_check(data: Mapping[str, object]) -> list[tuple[str, str]]:
    """Return `(dotted key, message)` for every rule across [[bus]] and [[doors]] entries broken.

    Entries whose own keys have the wrong type are skipped: their fields are reported anyway.
    """
    problems: list[tuple[str, str]] = []
    buses = _tables(data.get("bus"))
    doors = _tables(data.get("doors"))
    bus_names = _check_unique_names("bus", buses, problems)
    _check_unique_names("doors", doors, problems)
    readers: dict[tuple[str, int], tuple[int, object]] = {}
    for index, door in doors:
        bus, address = door.get("bus"), door.get("address")
        if not isinstance(bus, str):
            continue
        if bus_names and bus not in bus_names:
            problems.append(
                (
                    f"doors.{index}.bus",
                    f'no [[bus]] is named "{bus}"' + suggest(bus, sorted(bus_names)),
                )
            )
            continue
        if not isinstance(address, int) or isinstance(address, bool):
            continue
        first, first_name = readers.setdefault((bus, address), (index, door.get("name")))
        if first != index:
            problems.append(
                (
                    f"doors.{index}.address",
                    f'address {address} on bus "{bus}" is already taken by door "{first_name}"'
                    f" (doors.{first}); each reader on a bus needs an address of its own",
                )
            )
    return problems


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the choice closest to `word`, else the known choices."""
    known = list(choices)
    by_lower = {choice.lower(): choice for choice in known}
    close = difflib.get_close_matches(word.lower(), by_lower, n=1, cutoff=0.6)
    if close:
        return f' (did you mean "{by_lower[close[0]]}"?)'
    return f" (known: {', '.join(known)})" if known else ""


def _tables(value: object) -> list[tuple[int, Mapping[str, object]]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [(index, entry) for index, entry in enumerate(value) if isinstance(entry, Mapping)]


def _check_unique_names(
    section: str, entries: list[tuple[int, Mapping[str, object]]], problems: list[tuple[str, str]]
) -> set[str]:
    first_of: dict[str, int] = {}
    for index, entry in entries:
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        first = first_of.setdefault(name, index)
        if first != index:
            problems.append(
                (
                    f"{section}.{index}.name",
                    f'"{name}" is already the name of {section}.{first}; names must be unique',
                )
            )
    return set(first_of)
