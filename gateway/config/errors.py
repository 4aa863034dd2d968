"""What a bad config file looks like to its caller: `Problem`s gathered in one `ConfigError`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pydantic_core import PydanticCustomError

# Error type of the validators below; `messages.describe` passes their text through as written.
RULE_ERROR = "config_rule"


@dataclass(frozen=True)
class Problem:
    """One fault in a config file, printed as `PATH:dotted.key: message`."""

    path: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.key}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; `problems` lists every fault found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def invalid(message: str, key: str | None = None) -> PydanticCustomError:
    """Build the error a validator raises, shown to the installer exactly as `message`.

    A section-wide rule names the `key` of the section the fault belongs to, so the
    problem points at `mqtt.tls` rather than at `mqtt`.
    """
    # The message is passed as a context value, not as the template, so braces in it
    # (a path, a pattern) are never taken for template fields.
    context: dict[str, str] = {"message": message}
    if key is not None:
        context["key"] = key
    return PydanticCustomError(RULE_ERROR, "{message}", context)


def show(value: object) -> str:
    """Describe a TOML value the way the installer wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 40 else f'"{value[:37]}…"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return type(value).__name__
