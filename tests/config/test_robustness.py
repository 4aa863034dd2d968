"""Whatever a config file holds, loading ends in a Config or in problems worded for people."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, json_schema, validate_config
from tests.config.support import MINIMAL, PUBLIC_KEY

BASE = tomllib.loads(
    MINIMAL
    + f'\n[mqtt]\nhost = "broker"\ncommand_public_key = "{PUBLIC_KEY}"\n'
    + '\n[camera]\nsource = "/dev/video0"\n\n[web]\nport = 8080\n'
)

# Pydantic's own wording, which must never reach an installer.
RAW_WORDING = ("input should", "value error", "field required", "extra inputs", "string should")

TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.dates()
    | st.datetimes()
    | st.times(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


def places() -> list[tuple[str | int, ...]]:
    """Every key of the schema, each whole section or entry, and an unknown key in each."""
    schema = json_schema()
    found: list[tuple[str | int, ...]] = [("unknown",)]
    for section, holder in schema["properties"].items():
        is_list = holder.get("type") == "array"
        ref = (
            holder["items"]["$ref"] if is_list else holder.get("$ref") or holder["anyOf"][0]["$ref"]
        )
        prefix: tuple[str | int, ...] = (section, 0) if is_list else (section,)
        keys = schema["$defs"][ref.rsplit("/", 1)[-1]]["properties"]
        found += [(section,), prefix, (*prefix, "unknown")] + [(*prefix, key) for key in keys]
    return found


def put(data: dict[str, Any], place: tuple[str | int, ...], value: object) -> None:
    """Set `value` at `place` in `data`, unless an earlier change removed the way there."""
    holder: Any = data
    for part in place[:-1]:
        try:
            holder = holder[part]
        except (KeyError, IndexError, TypeError):
            return
    last = place[-1]
    if isinstance(holder, list):
        if isinstance(last, int) and last < len(holder):
            holder[last] = value
    elif isinstance(holder, dict):
        holder[last] = value


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(places()), TOML_VALUES), min_size=1, max_size=4))
def test_any_value_anywhere_loads_or_gives_readable_problems(
    changes: list[tuple[tuple[str | int, ...], object]],
) -> None:
    data = copy.deepcopy(BASE)
    for place, value in changes:
        put(data, place, value)

    try:
        validate_config(data, base_dir=Path("/nonexistent"))
    except ConfigError as error:
        problems = error.problems
    else:
        return
    assert problems
    for problem in problems:
        assert problem.key
        assert problem.message
        assert not problem.message.lower().startswith(RAW_WORDING), str(problem)
