"""Sessions and the login lockout in the database, so that every web instance sees them.

Any number of `rental-platform run --web` processes may serve one database behind one address:
a session started on one is live on all, a logout or a password change ends it on all, and
five failed logins for a name lock it out wherever they were tried. These are web_security's
`SessionStore` and `Throttle` with the same contract as its in-memory ones (docs/web.md), kept
in `web_sessions` and `login_failures`:

    sessions = DbSessions(pool)
    token, session = sessions.create("wang.li", "police", remote="10.1.2.3")
    throttle = DbThrottle(pool)
    throttle.reserve("wang.li")        # 0: check the password now

The database keeps only a token's SHA-256. Times are the wall clock (shared by the machines),
and a session's `last_seen` is written at most every `TOUCH_SECONDS`, not on every request.
Creating a session and reserving a check take a lock first (PostgreSQL: a transaction-scoped
advisory lock; SQLite: `BEGIN IMMEDIATE`), so instances never count past a limit together.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from web_security.sessions import (
    IDLE_SECONDS,
    MAX_SECONDS,
    MAX_SESSIONS,
    MAX_SESSIONS_PER_USER,
    PasswordChanged,
    Session,
    SessionsFull,
)
from web_security.throttle import FAILURE_WINDOW_SECONDS, MAX_FAILURES

from .database import Database
from .opening import Store
from .pool import StorePool
from .users import Role, check_role

# Advisory locks of our own (migrations use "RPMIG").
SESSIONS_LOCK = 0x52_50_53_45_53  # "RPSES"
THROTTLE_LOCK = 0x52_50_54_48  # "RPTH", with the name's hash as the second key
# A session's idle timer is written back at most this often: a page view is not a write.
TOUCH_SECONDS = 30.0
# A reserved check never ended (its process died) stops counting after this long.
CHECK_SECONDS = 60.0

_SESSION_COLUMNS = "username, role, csrf_token, remote, created_at, last_seen, must_change"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class DbSessions:
    """A web_security `SessionStore` in the database; safe from any thread."""

    def __init__(
        self,
        pool: StorePool,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        max_per_user: int = MAX_SESSIONS_PER_USER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self._clock = clock

    def generation(self, username: str) -> int:
        row = self._pool.run(
            lambda s: s.db.execute(
                "SELECT generation FROM users WHERE name_key = ?", (username.casefold(),)
            ).fetchone()
        )
        return 0 if row is None else int(row[0])

    def create(
        self,
        username: str,
        role: Role,
        remote: str | None,
        must_change: bool = False,
        generation: int | None = None,
    ) -> tuple[str, Session[Role]]:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(username, role, secrets.token_urlsafe(32), remote, now, now, must_change)
        key = username.casefold()

        def create(store: Store) -> None:
            db = store.db
            with db.transaction():
                if db.postgres:
                    db.execute("SELECT pg_advisory_xact_lock(?)", (SESSIONS_LOCK,))
                row = db.execute(
                    "SELECT generation FROM users WHERE name_key = ?", (key,)
                ).fetchone()
                if generation is not None and (0 if row is None else int(row[0])) != generation:
                    raise PasswordChanged
                self._expire(db, now)
                own = db.execute(
                    "SELECT digest FROM web_sessions WHERE name_key = ? ORDER BY last_seen", (key,)
                ).fetchall()
                (total,) = db.execute("SELECT count(*) FROM web_sessions").fetchone()
                if len(own) >= self.max_per_user or (own and total >= self.max_sessions):
                    # The user's longest idle session makes room, never another user's.
                    db.execute("DELETE FROM web_sessions WHERE digest = ?", (own[0][0],))
                elif total >= self.max_sessions:
                    raise SessionsFull
                db.execute(
                    f"INSERT INTO web_sessions (digest, name_key, {_SESSION_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        _digest(token),
                        key,
                        username,
                        role,
                        session.csrf_token,
                        remote,
                        now,
                        now,
                        must_change,
                    ),
                )

        self._pool.run(create)
        return token, session

    def get(self, token: str | None) -> Session[Role] | None:
        if not token or len(token) > 128:
            return None
        digest, now = _digest(token), self._clock()

        def get(store: Store) -> Session[Role] | None:
            db = store.db
            row = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM web_sessions WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                return None
            found = _session(row)
            if self._ended(found, now):
                with db.transaction():
                    db.execute("DELETE FROM web_sessions WHERE digest = ?", (digest,))
                return None
            if now - found.last_seen >= TOUCH_SECONDS:
                with db.transaction():
                    db.execute(
                        "UPDATE web_sessions SET last_seen = ? WHERE digest = ?", (now, digest)
                    )
                found.last_seen = now
            return found

        return self._pool.run(get)

    def revoke(self, token: str | None) -> bool:
        if not token:
            return False
        digest = _digest(token)
        return bool(self._pool.run(lambda s: _delete(s.db, "digest = ?", digest)))

    def revoke_user(self, username: str) -> int:
        key = username.casefold()

        def revoke(store: Store) -> int:
            db = store.db
            with db.transaction():
                db.execute(
                    "UPDATE users SET generation = generation + 1 WHERE name_key = ?", (key,)
                )
                return int(
                    db.execute("DELETE FROM web_sessions WHERE name_key = ?", (key,)).rowcount
                )

        return self._pool.run(revoke)

    def count(self) -> int:
        def count(store: Store) -> int:
            with store.db.transaction():
                self._expire(store.db, self._clock())
                return int(store.db.execute("SELECT count(*) FROM web_sessions").fetchone()[0])

        return self._pool.run(count)

    def _ended(self, session: Session[Role], now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds or now - session.created > self.max_seconds
        )

    def _expire(self, db: Database, now: float) -> None:
        db.execute(
            "DELETE FROM web_sessions WHERE last_seen < ? OR created_at < ?",
            (now - self.idle_seconds, now - self.max_seconds),
        )


def _session(row: tuple[Any, ...]) -> Session[Role]:
    username, role, csrf, remote, created, seen, must_change = row
    return Session(
        username, check_role(role), csrf, remote, float(created), float(seen), bool(must_change)
    )


def _delete(db: Database, where: str, value: Any) -> int:
    with db.transaction():
        return int(db.execute(f"DELETE FROM web_sessions WHERE {where}", (value,)).rowcount)


class DbThrottle:
    """A web_security `Throttle` in the database: 5 failures for a name in 15 minutes, counted
    wherever they were tried; a check counts from its reservation until it ends."""

    def __init__(
        self,
        pool: StorePool,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock

    def reserve(self, username: str) -> int:
        key, now = username.casefold(), self._clock()

        def reserve(store: Store) -> int:
            db = store.db
            with db.transaction():
                if db.postgres:
                    db.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (THROTTLE_LOCK, key))
                rows = db.execute(
                    "SELECT at, checking FROM login_failures WHERE name_key = ?"
                    " AND ((NOT checking AND at > ?) OR (checking AND at > ?)) ORDER BY at DESC",
                    (key, now - self.window_seconds, now - CHECK_SECONDS),
                ).fetchall()
                failures = [float(at) for at, checking in rows if not checking]
                if len(failures) >= self.max_failures:
                    oldest = failures[self.max_failures - 1]
                    return max(1, int(oldest + self.window_seconds - now) + 1)
                if len(rows) >= self.max_failures:
                    return 1  # the checks under way decide; a check takes a fraction of a second
                db.execute(
                    "INSERT INTO login_failures (name_key, at, checking) VALUES (?, ?, ?)",
                    (key, now, True),
                )
                return 0

        return self._pool.run(reserve)

    def failed(self, username: str) -> None:
        key, now = username.casefold(), self._clock()

        def failed(store: Store) -> None:
            db = store.db
            with db.transaction():
                _end_check(db, key)
                db.execute(
                    "INSERT INTO login_failures (name_key, at, checking) VALUES (?, ?, ?)",
                    (key, now, False),
                )
                # Every name's old rows go: a flood of names keeps 15 minutes of rows at most.
                db.execute(
                    "DELETE FROM login_failures WHERE at < ?",
                    (now - self.window_seconds - CHECK_SECONDS,),
                )

        self._pool.run(failed)

    def succeeded(self, username: str) -> None:
        key = username.casefold()

        def succeeded(store: Store) -> None:
            with store.db.transaction():
                _end_check(store.db, key)
                store.db.execute(
                    "DELETE FROM login_failures WHERE name_key = ? AND NOT checking", (key,)
                )

        self._pool.run(succeeded)

    def release(self, username: str) -> None:
        key = username.casefold()

        def release(store: Store) -> None:
            with store.db.transaction():
                _end_check(store.db, key)

        self._pool.run(release)


def _end_check(db: Database, key: str) -> None:
    """End one reserved check of `key` (the oldest)."""
    db.execute(
        "DELETE FROM login_failures WHERE id = (SELECT min(id) FROM login_failures"
        " WHERE name_key = ? AND checking)",
        (key,),
    )
