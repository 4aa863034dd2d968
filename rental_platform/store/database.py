"""One connection to the platform's database, SQLite or PostgreSQL, behind one small interface.

    db = Database.open("postgresql://platform@db.city:5432/city")   # or a file path for SQLite
    with db.transaction():
        db.execute("INSERT INTO status (gateway_id, state, body, received_at) VALUES (?, ?, ?, ?)",
                   (gateway_id, "online", body, now))

SQL is written once with `?` placeholders; for PostgreSQL they become `%s`. Where the two
engines need different SQL (partitions, arrays, locks), the caller asks `db.postgres`.

SQLite: WAL with `synchronous=FULL` on every connection (an ack promises the gateway it may
forget an event; WAL + NORMAL lost acknowledged commits under a simulated power cut, see
docs/store.md), and `BEGIN IMMEDIATE` so that instances sharing the file take turns.
PostgreSQL: psycopg 3, autocommit off only inside `transaction()`, READ COMMITTED.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from cloud_sync.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class DatabaseDown(Exception):
    """The database could not be reached (yet); the caller may try again later."""


def is_postgres_url(url: str | Path) -> bool:
    """Whether `--db` names a PostgreSQL database rather than a SQLite file."""
    return str(url).startswith(POSTGRES_SCHEMES)


# The exceptions that say the database is away or busy (see `transient`).
DATABASE_AWAY: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    DatabaseDown,
)


def transient(exc: BaseException) -> bool:
    """Whether `exc` says the database is away or busy, not that the statement is wrong.

    PostgreSQL killed or restarting, a dropped connection, a serialisation failure or a
    deadlock (psycopg's OperationalError family), SQLite's lock wait run out: all pass, and
    the same transaction can be tried again. Anything else is about the data or the SQL.
    """
    return isinstance(exc, DATABASE_AWAY)


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    """A connection that can be dropped and opened again; one thread uses it at a time."""

    def __init__(self, url: str | Path, *, connect_timeout: float = 10.0) -> None:
        self.url = str(url)
        self.postgres = is_postgres_url(url)
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._in_transaction = False

    @classmethod
    def open(cls, url: str | Path, *, connect_timeout: float = 10.0) -> Database:
        """A Database connected now (DatabaseDown if it cannot be)."""
        db = cls(url, connect_timeout=connect_timeout)
        db.connection()
        return db

    def __repr__(self) -> str:
        # Never the password a URL might carry.
        return f"Database({redacted(self.url)!r})"

    def connection(self) -> Any:
        """The live connection, opened again if it was dropped."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> Any:
        try:
            if self.postgres:
                return psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
                )
            path = Path(self.url)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        except (psycopg.OperationalError, sqlite3.OperationalError) as exc:
            raise DatabaseDown(f"{redacted(self.url)}: {exc}") from exc

    def drop(self) -> None:
        """Forget the connection (after an error); the next use opens a new one."""
        conn, self._conn = self._conn, None
        self._in_transaction = False
        if conn is not None:
            with contextlib.suppress(psycopg.Error, sqlite3.Error):
                conn.close()

    close = drop

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor (fetchone, fetchall, rowcount)."""
        conn = self.connection()
        if self.postgres:
            return conn.execute(_to_pyformat(sql), params, prepare=None)
        return conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row."""
        conn = self.connection()
        if self.postgres:
            with conn.cursor() as cursor:
                cursor.executemany(_to_pyformat(sql), rows)
        else:
            conn.executemany(sql, rows)

    def any_of(self, column: str) -> str:
        """`column` is one of a list passed as one parameter (see `list_param`)."""
        if self.postgres:
            return f"{column} = ANY(?)"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def list_param(self, values: Sequence[Any]) -> Any:
        """A list as the one parameter of `any_of`."""
        return list(values) if self.postgres else json.dumps(list(values))

    def rows_of(self, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> tuple[str, list[Any]]:
        """A subquery yielding `rows` (text and bigint columns) as c0, c1, …, and its parameters.

        PostgreSQL unnests one array per column; SQLite reads one JSON array of rows.
        """
        names = ", ".join(f"c{i}" for i in range(len(types)))
        if self.postgres:
            columns = (
                [list(column) for column in zip(*rows, strict=True)]
                if rows
                else [[] for _ in types]
            )
            arrays = ", ".join(f"?::{kind}[]" for kind in types)
            return f"SELECT * FROM unnest({arrays}) AS v({names})", columns
        picks = ", ".join(f"value->>{i} AS c{i}" for i in range(len(types)))
        return f"SELECT {picks} FROM json_each(?)", [json.dumps([list(row) for row in rows])]

    def script(self, text: str) -> None:
        """Run several `;`-separated statements (no `;` inside them; `--` comments dropped)."""
        text = re.sub(r"--[^\n]*", "", text)
        for statement in text.split(";"):
            if statement.strip():
                self.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A transaction: `BEGIN IMMEDIATE` in SQLite; COMMIT, or ROLLBACK on any exception."""
        if self._in_transaction:
            yield self  # nested: part of the outer one
            return
        conn = self.connection()
        if self.postgres:
            conn.execute("BEGIN")
        else:
            conn.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            try:
                conn.execute("ROLLBACK")
            except (psycopg.Error, sqlite3.Error):
                self.drop()  # a connection that cannot roll back is of no more use
            raise
        self._in_transaction = False
        try:
            conn.execute("COMMIT")
        except BaseException:
            # The outcome is unknown (the commit may have reached the disk): the caller tries
            # the whole transaction again, and the dedupe makes that harmless.
            self.drop()
            raise


def redacted(url: str) -> str:
    """The URL without a password, for logs and errors."""
    if not is_postgres_url(url) or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


def retrying(
    db: Database,
    work: Callable[[Database], T],
    stopping: threading.Event,
    backoff: Backoff,
    on_failure: Callable[[str], None] | None = None,
) -> T:
    """Run `work(db)` until it returns, reconnecting with back-off while the database is away.

    Only transient failures are retried (see `transient`); anything else is raised. Raises
    InterruptedError when `stopping` is set while waiting.
    """
    while True:
        try:
            result = work(db)
        except Exception as exc:
            if not transient(exc):
                raise
            db.drop()
            delay = backoff.next_delay()
            why = f"database: {exc}".strip()
            if on_failure is not None:
                on_failure(why)
            log.warning("%s; next attempt in %.1f s", why.splitlines()[0], delay)
            if stopping.wait(delay):
                raise InterruptedError("stopping while the database was away") from exc
            continue
        backoff.reset()
        return result
