"""The city's web users: police and district staff, with an argon2id hash each.

Passwords follow the same policy and hash as the gateway's page (`web_security.passwords`);
the hashing happens before a row is written, on web_security's hashing threads.

    add_user(db, "wang.li", "police", hash_password(password), must_change=False, now=time.time())
    found = find_user(db, "Wang.Li")       # names compare case-insensitively
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .database import Database

Role = Literal["police", "district"]
ROLES: tuple[Role, ...] = ("police", "district")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}")


class UserError(ValueError):
    """A user that cannot be made: a bad name, a bad role, or one taken."""


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the login needs it (web_security.login.Account)."""

    username: str
    role: Role
    must_change: bool


def check_username(username: str) -> str:
    """2-64 letters, digits or `_.@-`, starting with a letter or digit."""
    if not _USERNAME.fullmatch(username):
        raise UserError(
            "a username is 2-64 letters, digits or _.@- and starts with a letter or digit"
        )
    return username


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise UserError(f"the role must be one of {', '.join(ROLES)}")


def add_user(
    db: Database, username: str, role: str, password_hash: str, *, must_change: bool, now: float
) -> Account:
    """Make a user from an already computed hash; UserError when the name is taken."""
    account = Account(check_username(username), check_role(role), must_change)
    with db.transaction():
        made = db.execute(
            "INSERT INTO users (username, name_key, role, password_hash, must_change, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (username, username.casefold(), account.role, password_hash, must_change, now),
        ).rowcount
    if not made:
        raise UserError(f"a user {username!r} exists already")
    return account


def find_user(db: Database, username: str) -> tuple[Account, str] | None:
    """The user and their password hash, or None."""
    row = db.execute(
        "SELECT username, role, must_change, password_hash FROM users WHERE name_key = ?",
        (username.casefold(),),
    ).fetchone()
    if row is None:
        return None
    return Account(row[0], check_role(row[1]), bool(row[2])), str(row[3])


def replace_hash(db: Database, username: str, old: str | None, new: str) -> None:
    """Store `new` as the user's hash. With `old` (a rehash after login), only if the hash is
    still `old`, so it cannot undo a password change made in between; without, a new password
    chosen, which spends a one-time one."""
    with db.transaction():
        if old is None:
            db.execute(
                "UPDATE users SET password_hash = ?, must_change = ? WHERE name_key = ?",
                (new, False, username.casefold()),
            )
        else:
            db.execute(
                "UPDATE users SET password_hash = ? WHERE name_key = ? AND password_hash = ?",
                (new, username.casefold(), old),
            )
