"""Pydantic's validation errors rewritten as messages an installer can act on."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from gateway.config.base import PATTERN_HINTS
from gateway.config.crosscheck import suggest
from gateway.config.errors import RULE_ERROR, show
from gateway.config.models import Config

Loc = tuple[int | str, ...]

_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text in quotes",
    "model_type": "a table",
    "dict_type": "a table",
}


def describe(error: ValidationError) -> list[tuple[str, str]]:
    """Return `(dotted key, message)` for each error, in the order pydantic found them.

    The Config-wide cross-check error is left out: `load_config` reports those rules per key.
    """
    details = [detail for detail in error.errors() if detail["type"] != "cross_check"]
    found: list[tuple[str, str]] = []
    for detail in details:
        loc = tuple(detail["loc"])
        # A list whose entries all failed also reports "too short": the entries say it better.
        if detail["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc
            for other in details
        ):
            continue
        context = detail.get("ctx") or {}
        if detail["type"] == RULE_ERROR and "key" in context:
            loc += (context["key"],)
        key = ".".join(str(part) for part in loc) or "(config)"
        found.append((key, _message(detail, loc)))
    return found


def _message(detail: ErrorDetails, loc: Loc) -> str:
    kind, context, value = detail["type"], detail.get("ctx") or {}, detail["input"]
    got = f" (got {show(value)})"
    if kind == RULE_ERROR:
        return str(context["message"])
    if kind == "missing":
        return _missing(loc)
    if kind == "extra_forbidden":
        return "not a known key" + suggest(str(loc[-1]), _keys_of(_model_at(loc[:-1])))
    if kind == "tuple_type" or kind == "list_type":
        table = str(loc[-1])
        if isinstance(value, dict):
            return f"write [[{table}]], not [{table}]: this is a list of tables"
        return f"must be a list of [[{table}]] tables, not {show(value)}"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {show(value)}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return _out_of_range(loc, context) + got
    if kind == "literal_error":
        choices = str(context["expected"]).replace("'", '"')  # TOML quotes strings with "
        return f"must be {choices}{got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {context['max_length']} characters long{got}"
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(context["pattern"], f"must match {context['pattern']}") + got
    if kind == "too_short":
        return f"needs at least one [[{loc[-1]}]] table"
    return detail["msg"][:1].lower() + detail["msg"][1:]


def _missing(loc: Loc) -> str:
    field = _field_at(loc)
    if field is not None and _submodel(field.annotation) is not None:
        name = str(loc[-1])
        if get_origin(field.annotation) is tuple:
            return f"at least one [[{name}]] table is required"
        return f"the [{name}] section is required"
    return "required key is missing"


def _out_of_range(loc: Loc, context: dict[str, Any]) -> str:
    low = high = None
    field = _field_at(loc)
    for limit in field.metadata if field is not None else []:
        low = getattr(limit, "ge", low)
        high = getattr(limit, "le", high)
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    if "ge" in context:
        return f"must be at least {context['ge']}"
    if "le" in context:
        return f"must be at most {context['le']}"
    if "gt" in context:
        return f"must be more than {context['gt']}"
    return f"must be less than {context['lt']}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """Return the model that validates the table at `loc` (list indexes skipped)."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = _fields_by_key(model).get(part)
        model = _submodel(field.annotation) if field is not None else None
    return model


def _field_at(loc: Loc) -> FieldInfo | None:
    model = _model_at(loc[:-1])
    return _fields_by_key(model).get(str(loc[-1])) if model is not None and loc else None


def _fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    by_key: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        key = field.validation_alias or field.alias or name
        by_key.setdefault(str(key), field)  # the first field of a shared key is the one documented
    return by_key


def _keys_of(model: type[BaseModel] | None) -> list[str]:
    return list(_fields_by_key(model)) if model is not None else []


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _submodel(argument)
        if found is not None:
            return found
    return None
