"""An upgrade keeps every tenant and event: a store written by the previous release (schema 2,
before snapshots and the audit log) is opened by this one and migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from gateway.store import Store, schema
from gateway.store.journal import decode_row
from gateway.store.schema import MIGRATION_NAMES

from .conftest import GATEWAY_ID
from .factories import FakeClock, tenant

PREVIOUS_RELEASE = 2  # migrations m0001 and m0002


def as_previous_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Store.open behave as the previous release: only its migrations exist."""
    names = MIGRATION_NAMES[:PREVIOUS_RELEASE]

    def apply_old(conn: sqlite3.Connection) -> int:
        db = Database(conn, recursive_triggers=False, execute_plugins=False)
        schema.migrations.apply(db, stop_before=MIGRATION_NAMES[PREVIOUS_RELEASE])
        conn.execute(f"PRAGMA user_version = {len(names)}")
        return len(names)

    monkeypatch.setattr("gateway.store.store.apply_migrations", apply_old)


def test_an_upgrade_keeps_every_tenant_and_event(
    data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old:
        as_previous_release(old)
        with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
            assert store.schema_version() == PREVIOUS_RELEASE
            ids = [store.add_tenant(tenant(n, cards=(70_000 + n,))).id for n in range(1, 41)]
            for n in range(300):
                store.append_event({"type": "access.granted", "door": "main",
                                    "credential": {"kind": "card", "number": 70_001 + n % 40},
                                    "reason": "tenant_card", "snapshot": None,
                                    "snapshot_error": "disabled"})  # fmt: skip
            store.acknowledge(250)
            store.set_card_status(70_001, "lost")  # the cards table is rebuilt (m0007): states
            store.set_card_status(70_002, "revoked")  # and PINs come through it
            store.set_card_pin(70_003, "2468")
            tenants_before = [store.get_tenant(i) for i in ids]
            ids_before = {i: store.reveal_id_number(i) for i in ids}
            # Read as the previous release reads them (this release's reader also looks at a
            # table that only its own migration makes).
            rows = sqlite3.connect(data_dir / "gateway.db").execute(
                "SELECT seq, event_id, body, sealed_body FROM events WHERE seq > 250 ORDER BY seq"
            ).fetchall()  # fmt: skip
            events_before = [decode_row(store.ctx.keys, row) for row in rows]
        tables = sqlite3.connect(data_dir / "gateway.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()  # fmt: skip
        assert ("audit",) not in tables  # really the previous schema

    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:  # this release
        assert store.schema_version() == len(MIGRATION_NAMES)
        assert [store.get_tenant(i) for i in ids] == tenants_before
        assert {i: store.reveal_id_number(i) for i in ids} == ids_before
        assert store.pending_events(limit=1000) == events_before
        assert store.acked_seq() == 250
        # Snapshots of the past are not sent again after the upgrade: the outbox starts at
        # the ack watermark.
        assert store.snapshot_sent_seq() == 250
        assert store.card_lookup(70_001) is not None
        assert store.set_card_status(70_004, "cancelled").status == "cancelled"
        assert store.verify_audit().ok
        # 40 tenant.changed, 300 access events and 3 card changes: seqs carry on after them.
        assert store.append_event({"type": "reader.online", "door": "main"}).seq == 344
