"""Exceptions raised by the store: one small hierarchy callers can catch by meaning."""

from __future__ import annotations

from collections.abc import Mapping


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFound(StoreError):
    """The tenant, card, user or code asked for does not exist."""


class Conflict(StoreError):
    """The change would break a uniqueness rule (card held by another tenant, duplicate user...).

    `field` names the input at fault when there is one, as for ValidationError.
    """

    def __init__(self, message: str, field: str | None = None, *, code: str | None = None,
                 params: Mapping[str, object] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.field = field
        self.code = code  # the message's key in the page's words (gateway/web/i18n.py)
        self.params = dict(params or {})


class ValidationError(StoreError, ValueError):
    """An input value is malformed; `field` names it so a form or CSV report can point at it.

    >>> str(ValidationError("phone", "must be 11 digits"))
    'phone: must be 11 digits'
    """

    def __init__(self, field: str, message: str, *, code: str | None = None,
                 params: Mapping[str, object] | None = None) -> None:  # fmt: skip
        """`message` in English for the API, the CLI and logs; `code` and `params` let a page
        say the same in its own words (`refuse` makes all three from one catalog entry)."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code
        self.params = dict(params or {})


def refuse(field: str, code: str, catalog: Mapping[str, str], **params: object) -> ValidationError:
    """The ValidationError for `catalog[code]` (an English template) with `params` filled in.

    >>> str(refuse("phone", "short", {"short": "must be {n} digits"}, n=11))
    'phone: must be 11 digits'
    """
    return ValidationError(field, catalog[code].format(**params), code=code, params=params)


class KeyFileError(StoreError):
    """The secret key file is missing, unsafe (mode wider than 0600) or damaged."""


class StoreClosed(StoreError):
    """The store was closed; no more reads or writes are accepted."""
