"""The police audit log: append-only, and any change to its past is found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import Store, ValidationError


def add(store: Store, n: int, action: str = "entries.query") -> None:
    store.audit(
        username="li.police", role="police", remote="10.0.0.7", action=action,
        purpose=f"案件 2026-{n:03d}", params={"room": "301", "n": n}, records=n,
    )  # fmt: skip


def raw(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(store.db_path, isolation_level=None)


def test_rows_chain_and_read_back_newest_first(store: Store) -> None:
    for n in range(1, 6):
        add(store, n)
    rows = store.audit_page(limit=3)
    assert [r.seq for r in rows] == [5, 4, 3]
    assert rows[0].purpose == "案件 2026-005"
    assert rows[0].params == {"n": 5, "room": "301"}
    assert [r.seq for r in store.audit_page(before=3, limit=10)] == [2, 1]
    check = store.verify_audit()
    assert (check.ok, check.rows, check.first_bad) == (True, 5, None)


def test_the_database_refuses_changes_and_deletions(store: Store) -> None:
    add(store, 1)
    conn = raw(store)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET records = 0")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    conn.close()


@pytest.mark.parametrize("tamper", [
    "UPDATE audit SET purpose = 'nothing to see' WHERE seq = 3",
    "UPDATE audit SET records = 1 WHERE seq = 3",
    "DELETE FROM audit WHERE seq = 3",
    "UPDATE audit SET ts = '2020-01-01T00:00:00Z' WHERE seq = 3",
])  # fmt: skip
def test_a_past_row_changed_behind_the_triggers_breaks_the_chain(
    store: Store, tamper: str
) -> None:
    for n in range(1, 6):
        add(store, n)
    conn = raw(store)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute(tamper)
    conn.close()
    check = store.verify_audit()
    assert not check.ok
    assert check.first_bad in (3, 4)  # the changed row, or the one after a removed one


def test_a_chain_recomputed_without_the_key_does_not_verify(
    store: Store, data_dir: Path
) -> None:
    add(store, 1)
    add(store, 2)
    conn = raw(store)
    conn.execute("DROP TRIGGER audit_no_update")
    # Someone with the database but not secret.key rewrites row 2 and "fixes" its hash.
    conn.execute("UPDATE audit SET records = 0, hash = randomblob(32) WHERE seq = 2")
    conn.close()
    assert store.verify_audit().first_bad == 2


def test_unknown_actions_and_negative_counts_are_refused(store: Store) -> None:
    with pytest.raises(ValidationError):
        add(store, 1, action="coffee.break")
    with pytest.raises(ValidationError):
        store.audit(username="x1", role="police", remote=None, action="entries.query",
                    purpose="p", params={}, records=-1)  # fmt: skip
    assert store.audit_page() == []


def test_an_export_is_two_rows_and_a_start_without_its_end_reads_unfinished(
    store: Store,
) -> None:
    def start() -> int:
        return store.audit(username="li.police", role="police", remote=None,
                           action="export.started", purpose="案件 2026-300",
                           params={"room": "301"}, records=0).seq  # fmt: skip

    def end(action: str, params: dict[str, object], records: int = 0) -> None:
        store.audit(username="li.police", role="police", remote=None, action=action,
                    purpose=None, params=params, records=records)  # fmt: skip

    finished, cut, killed = start(), start(), start()
    end("export.finished", {"start": finished}, 1200)
    end("export.cut", {"start": cut}, 500)
    states = {r.seq: r.export_state for r in store.audit_page() if r.action == "export.started"}
    assert states == {finished: "finished", cut: "cut", killed: "unfinished"}
    with pytest.raises(ValidationError, match="ended already"):
        end("export.finished", {"start": cut}, 1200)
    add(store, 9)
    with pytest.raises(ValidationError, match="not the start of an export"):
        end("export.cut", {"start": killed + 3})  # the entries.query row
    with pytest.raises(ValidationError, match="names its start"):
        end("export.cut", {"start": killed, "note": "x"})
    assert store.verify_audit().ok


def test_a_purpose_must_show_something_and_is_stored_trimmed(store: Store) -> None:
    def query(purpose: str | None) -> None:
        store.audit(username="li.police", role="police", remote=None, action="entries.query",
                    purpose=purpose, params={}, records=0)  # fmt: skip

    for blank in (None, "", "  ", "\u200b\u2060", "\u3000\ufeff", "\u3164"):
        with pytest.raises(ValidationError, match="purpose"):
            query(blank)
    with pytest.raises(ValidationError, match="control characters"):
        query("案件\n2026")
    query(" \u3000案件 2026-301\u200b ")
    assert [r.purpose for r in store.audit_page()] == ["案件 2026-301"]
