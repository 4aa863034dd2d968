"""Signed commands: each gateway's counter, and what was sent and answered (never the args)."""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command the platform sent and, once it came, the gateway's result."""

    gateway_id: str
    counter: int
    cmd: str | None
    summary: str | None
    sent_at: float | None
    ok: bool | None
    error: str | None
    result_at: float | None


def next_counter(db: Database, gateway_id: str, at_least: int) -> int:
    """Allocate the gateway's next command counter: above every earlier one, and >= at_least."""
    with db.transaction():
        (counter,) = db.execute(
            "INSERT INTO command_counters (gateway_id, counter) VALUES (?, ?)"
            " ON CONFLICT (gateway_id) DO UPDATE SET counter = CASE"
            " WHEN command_counters.counter + 1 > excluded.counter"
            " THEN command_counters.counter + 1 ELSE excluded.counter END RETURNING counter",
            (gateway_id, max(1, at_least)),
        ).fetchone()
    return int(counter)


def record_command(
    db: Database,
    gateway_id: str,
    counter: int,
    cmd: str,
    summary: str,
    issued_at: str,
    expires_at: str,
) -> None:
    """Remember a command about to be published (its result may come before sent_at is set)."""
    with db.transaction():
        db.execute(
            "INSERT INTO commands (gateway_id, counter, cmd, summary, issued_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, counter) DO UPDATE SET"
            " cmd = excluded.cmd, summary = excluded.summary, issued_at = excluded.issued_at,"
            " expires_at = excluded.expires_at",
            (gateway_id, counter, cmd, summary, issued_at, expires_at),
        )


def command_sent(db: Database, gateway_id: str, counter: int, at: float) -> None:
    """The broker accepted the command's publish."""
    with db.transaction():
        db.execute(
            "UPDATE commands SET sent_at = ? WHERE gateway_id = ? AND counter = ?",
            (at, gateway_id, counter),
        )


def command(db: Database, gateway_id: str, counter: int) -> CommandRecord | None:
    """One command and its result so far."""
    row = db.execute(
        "SELECT gateway_id, counter, cmd, summary, sent_at, ok, error, result_at FROM commands"
        " WHERE gateway_id = ? AND counter = ?",
        (gateway_id, counter),
    ).fetchone()
    if row is None:
        return None
    ok = None if row[5] is None else bool(row[5])
    return CommandRecord(row[0], int(row[1]), row[2], row[3], row[4], ok, row[6], row[7])
