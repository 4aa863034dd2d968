"""Web users: username, role, argon2id hash. Hashing happens outside the writer thread.

argon2 costs tens of milliseconds by design; done inside the writer it would hold up door
events queued behind it, so the store hashes before it writes (on the hashing threads of
web_security.passwords, the caller waiting) and writes the result.
"""

from __future__ import annotations

import re
import sqlite3

from .context import Context
from .errors import Conflict, NotFound, ValidationError
from .models import ROLES, Role, User

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}")
_SELECT = "SELECT username, role, created, disabled, must_change FROM users"


def check_username(username: str) -> str:
    """2-64 letters, digits or `_.@-`, starting with a letter or digit."""
    if not _USERNAME.fullmatch(username):
        raise ValidationError(
            "username", "must be 2-64 letters, digits or _.@- and start with a letter or digit",
            code="username_shape",
        )  # fmt: skip
    return username


def check_role(role: str) -> Role:
    """One of the three roles of SPEC 1."""
    for known in ROLES:
        if role == known:
            return known
    raise ValidationError("role", f"must be one of {', '.join(ROLES)}")


def insert_user(
    conn: sqlite3.Connection,
    ctx: Context,
    username: str,
    role: Role,
    password_hash: str,
    must_change: bool = False,
) -> User:
    """Create a user with an already computed hash; Conflict if the name is taken."""
    try:
        conn.execute(
            "INSERT INTO users (username, role, password_hash, created, must_change)"
            " VALUES (?, ?, ?, ?, ?)",
            (username, role, password_hash, ctx.now_text(), int(must_change)),
        )
    except sqlite3.IntegrityError:
        raise Conflict(f"user {username!r} already exists", field="username",
                       code="username_taken") from None  # fmt: skip
    return get_user(conn, username)


def get_user(conn: sqlite3.Connection, username: str) -> User:
    """The user, or NotFound (names compare case-insensitively)."""
    row = conn.execute(f"{_SELECT} WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return User(username=row[0], role=row[1], created=row[2], disabled=bool(row[3]),
                must_change=bool(row[4]))


def stored_hash(conn: sqlite3.Connection, username: str) -> str | None:
    """The user's password hash, or None when there is no such user."""
    row = conn.execute("SELECT password_hash FROM users WHERE username = ?", (username,)).fetchone()
    return None if row is None else str(row[0])


def replace_hash(conn: sqlite3.Connection, username: str, old: str | None, new: str) -> None:
    """Store `new` as the user's hash; with `old`, only if the hash is still `old`.

    The compare-and-set keeps a rehash after login from undoing a password change that
    committed in between.
    """
    if old is None:  # a new password chosen: a one-time password is spent
        cursor = conn.execute(
            "UPDATE users SET password_hash = ?, must_change = 0 WHERE username = ?",
            (new, username),
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no user {username!r}")
    else:
        conn.execute(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
            (new, username, old),
        )


def set_disabled(conn: sqlite3.Connection, username: str, disabled: bool) -> User:
    """Disable or re-enable a login."""
    conn.execute("UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username))
    return get_user(conn, username)
