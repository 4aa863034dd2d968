"""Exceptions raised by the store: one small hierarchy callers can catch by meaning."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFound(StoreError):
    """The tenant, card, user or code asked for does not exist."""


class Conflict(StoreError):
    """The change would break a uniqueness rule (card held by another tenant, duplicate user...).

    `field` names the input at fault when there is one, as for ValidationError.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationError(StoreError, ValueError):
    """An input value is malformed; `field` names it so a form or CSV report can point at it.

    >>> str(ValidationError("phone", "must be 11 digits"))
    'phone: must be 11 digits'
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class KeyFileError(StoreError):
    """The secret key file is missing, unsafe (mode wider than 0600) or damaged."""


class StoreClosed(StoreError):
    """The store was closed; no more reads or writes are accepted."""
