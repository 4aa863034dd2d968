"""Bounded JSON for MQTT payloads: hostile input is refused with a reason, never raised further.

`json.loads` alone is not safe on a message from the network: a few kilobytes of `[[[[…`
raise RecursionError (not ValueError, so the usual `except ValueError` lets it kill the
thread), bytes in UTF-16 or UTF-32 are decoded silently, `NaN` is accepted, and a `\\ud800`
escape yields a string that cannot be encoded again. Every payload that crosses the broker
goes through here: size first, before anything is copied or decoded, then UTF-8, nesting depth
(counted without recursion), and only then the parser.

    ack = parse_object(message.payload, max_bytes=1024)   # dict, or PayloadRefused
    ack.get("seq")
    try:
        ...
    except PayloadRefused as refused:
        log.warning("ack refused: %s", refused)            # says why, never the content
        counters[refused.reason] += 1

Reasons: `too_large`, `not_utf8`, `not_json`, `too_deep`, `wrong_type`.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "PayloadRefused", "parse_json", "parse_object"]

# A registry.apply payload nests five deep (args, tenants, tenant, cards, card); Python's
# parser recurses once per level and stops near 1000.
MAX_DEPTH = 32

# A JSON string, or an unterminated one up to the end of the text: every match attempt that
# starts at a quote succeeds, so a text full of stray quotes and backslashes stays linear
# (a pattern that can fail after a long scan made re.sub quadratic on such input).
_STRING = re.compile(r'"(?:[^"\\]++|\\(?:.|\Z))*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# Where a lone surrogate could come from: the text itself is valid UTF-8, so only an escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class PayloadRefused(ValueError):
    """A payload that is not the bounded JSON asked for; `reason` is one short word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_json(data: bytes | bytearray, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` as JSON of at most `max_bytes` bytes (UTF-8) nested at most `max_depth`.

    Raises PayloadRefused, and nothing else, for any input.
    """
    if len(data) > max_bytes:
        raise PayloadRefused("too_large", f"{len(data)} bytes, over {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRefused("not_utf8", "not UTF-8") from None
    if text.count("[") + text.count("{") > max_depth:  # else it cannot nest deeper
        depth = nesting_depth(text)
        if depth > max_depth:
            raise PayloadRefused("too_deep", f"nested {depth} deep, over {max_depth}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        # ValueError includes an integer of more than 4300 digits (Python's own limit).
        raise PayloadRefused("not_json", "not JSON") from None
    if _SURROGATE_ESCAPE.search(text) is not None and not _encodable(value):
        raise PayloadRefused("not_utf8", "a string holds a lone surrogate")
    return value


def parse_object(
    data: bytes | bytearray, *, max_bytes: int, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """`parse_json`, refusing anything but a JSON object with `wrong_type`."""
    value = parse_json(data, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise PayloadRefused("wrong_type", f"a JSON object expected, not {_kind(value)}")
    return value


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON `text`, counted without recursion.

    Exact for valid JSON; for invalid text at least as deep as any prefix a parser accepts
    before it fails, so it bounds the parser's recursion either way.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets.encode("ascii"))), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"
