"""Read scaling (issue item 7): a PostgreSQL primary and a hot standby made with
`pg_basebackup -R` on loopback; ingest writes to the primary, police search reads the standby,
and the search's audit is written to the primary."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rental_platform.audit import AuditLog
from rental_platform.search import parse_entry_filter, search_entries
from rental_platform.store import Incoming, Store, StoreConfig, set_building, store_batch

from ..postgres import PostgresCluster, available
from .conftest import event, message

GW = "gw-440305-0042"
BUILDING = "440305001002-0042"


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[PostgresCluster, PostgresCluster]]:
    """A primary with one database, and its hot standby."""
    if not available():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/setup --test")
    folder = Path(tempfile.mkdtemp(prefix="pg-standby-"))
    folder.chmod(0o755)
    primary = PostgresCluster.create(folder / "primary")
    primary.start()
    standby = None
    try:
        primary.new_database()  # t_1, before the base backup: the standby has it too
        standby = primary.standby(folder / "standby")
        standby.start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
        shutil.rmtree(folder, ignore_errors=True)


def entries(gateway_id: str, seqs: range) -> list[Incoming]:
    return [
        message(gateway_id, "events", event(gateway_id, seq, type="access.granted",
                credential={"kind": "card", "number": 7000 + seq % 3}, room="301"))
        for seq in seqs
    ]  # fmt: skip


def test_search_reads_the_standby_while_ingest_and_the_audit_write_the_primary(
    replicated: tuple[PostgresCluster, PostgresCluster], tmp_path: Path
) -> None:
    primary, standby = replicated
    config = StoreConfig.for_url(
        primary.url("t_1"), key_file=tmp_path / "store.key", snapshot_dir=tmp_path / "pictures"
    )
    writer = Store.open(config)  # migrations, on the primary
    set_building(writer.db, GW, BUILDING)
    store_batch(writer, entries(GW, range(1, 31)))
    standby.wait_replayed(primary)

    # The search side: the same store key and pictures, the standby's URL, nothing prepared.
    reader = Store.open(
        StoreConfig.for_url(standby.url("t_1"), key_file=config.key_file,
                            snapshot_dir=config.snapshot_dir), prepare=False,
    )  # fmt: skip
    assert reader.db.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    audit = AuditLog(writer.db, writer.sealer)
    wanted = parse_entry_filter(
        {"purpose": "案件 2026-7", "building": BUILDING, "card": "7001", "limit": "5"},
        reader.sealer,
    )
    page = search_entries(reader, wanted)
    assert [e["seq"] for e in page.entries] == [28, 25, 22, 19, 16]
    row = audit.record(username="li.police", role="police", remote="10.0.0.7",
                       action="entries.query", purpose=wanted.purpose,
                       params=wanted.audit_params(), records=len(page.entries))  # fmt: skip

    # Ingest goes on at the primary; the standby catches up and the next page sees it whole.
    store_batch(writer, entries(GW, range(31, 61)))
    standby.wait_replayed(primary)
    newest = search_entries(reader, parse_entry_filter(
        {"purpose": "案件 2026-7", "gateway_id": GW, "limit": "1"}, reader.sealer))  # fmt: skip
    assert newest.entries[0]["seq"] == 60
    rest = parse_entry_filter(
        {"purpose": "案件 2026-7", "building": BUILDING, "card": "7001", "limit": "500",
         "cursor": page.next_cursor or ""}, reader.sealer)  # fmt: skip
    assert [e["seq"] for e in search_entries(reader, rest).entries] == [13, 10, 7, 4, 1]

    # The audit row is on the primary, and replicated; the standby refuses to take one.
    assert reader.db.execute("SELECT seq FROM audit").fetchall() == [(row.seq,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        AuditLog(reader.db, reader.sealer).record(
            username="li.police", role="police", remote=None, action="audit.view",
            purpose=None, params={}, records=1)  # fmt: skip
    reader.close()
    writer.close()
