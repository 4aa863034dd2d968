"""The committed JSON Schema and docs/config.md cannot fall behind the models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from gateway.config import Config, json_schema
from gateway.config.reference import schema_text, with_reference

ROOT = Path(__file__).parents[2]
SCHEMA = ROOT / "configs" / "gateway.schema.json"
DOCS = ROOT / "docs" / "config.md"
REGENERATE_SCHEMA = "python -m gateway.config --schema > configs/gateway.schema.json"
REGENERATE_DOCS = "python -m gateway.config --docs docs/config.md"


def sections() -> dict[str, type[BaseModel]]:
    """Map each TOML section name to the model of its tables."""
    found: dict[str, type[BaseModel]] = {}
    for name, field in Config.model_fields.items():
        candidates = (field.annotation, *get_args(field.annotation))
        found[field.alias or name] = next(c for c in candidates if _is_model(c))
    return found


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), f"run `{REGENERATE_SCHEMA}`"


def test_schema_command_prints_the_committed_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.config", "--schema"],
        capture_output=True,
        check=True,
        cwd=ROOT,
        encoding="utf-8",
    ).stdout

    assert json.loads(printed) == json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_schema_forbids_unknown_keys_everywhere() -> None:
    schema = json_schema()

    assert schema["additionalProperties"] is False
    assert all(model["additionalProperties"] is False for model in schema["$defs"].values())


def test_every_key_has_a_title_and_description() -> None:
    for model in sections().values():
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert field.title, f"{model.__name__}.{name} has no title"
            assert field.description, f"{model.__name__}.{name} has no description"


def test_docs_reference_matches_the_models() -> None:
    text = DOCS.read_text(encoding="utf-8")

    assert with_reference(text) == text, f"run `{REGENERATE_DOCS}`"


def test_every_key_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    headings = list(re.finditer(r"^### `(\[\[?)(\w+)\]\]?`", text, re.MULTILINE))
    documented: dict[str, str] = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        end = following.start() if following else len(text)
        documented[heading.group(2)] = text[heading.end() : end]

    for section, model in sections().items():
        assert section in documented, f"[{section}] is not in docs/config.md"
        for name, field in model.model_fields.items():
            if not field.exclude:
                assert f"| `{name}` |" in documented[section], f"{section}.{name} is undocumented"
