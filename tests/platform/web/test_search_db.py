"""`--search-db`: with a hot standby, the web reads police search and the fleet from it, while
sessions, the lockout and the audit stay on the primary. The standby's replay is paused, so
what the web shows tells which database it read."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from rental_platform.store import Incoming, Store, StoreConfig, store_batch
from rental_platform.store.users import add_user
from rental_platform.web.app import create_app
from rental_platform.web.process import close_state, open_state
from rental_platform.web.settings import WebSettings

from ...postgres import PostgresCluster
from .. import test_standby
from ..conftest import event, message
from .conftest import PASSWORD, USERS, password_hash

GW, LATE = "gw-440305-0042", "gw-440305-0099"
replicated = test_standby.replicated  # the fixture: a primary and its hot standby


def entry(seq: int) -> Incoming:
    return message(GW, "events", event(GW, seq, type="access.granted", room="301",
                                       credential={"kind": "card", "number": 5150}))  # fmt: skip


def test_search_and_the_fleet_read_the_standby_sessions_and_audit_the_primary(
    replicated: tuple[PostgresCluster, PostgresCluster], tmp_path: Path
) -> None:
    primary, standby = replicated
    config = StoreConfig.for_url(primary.url("t_1"), key_file=tmp_path / "store.key",
                                 snapshot_dir=tmp_path / "pictures")  # fmt: skip
    writer = Store.open(config)
    writer.db.execute("TRUNCATE events, gateways, status, audit, users, web_sessions")
    add_user(writer.db, USERS["police"], "police", password_hash(), must_change=False,
             now=time.time())  # fmt: skip
    status = {"state": "online", "ts": "2026-03-01T08:00:00+08:00", "building": "440305001002-0042"}
    store_batch(writer, [message(GW, "status", status), *(entry(seq) for seq in (1, 2, 3))])
    standby.wait_replayed(primary)
    with psycopg.connect(standby.url("t_1"), autocommit=True) as paused:
        paused.execute("SELECT pg_wal_replay_pause()")
        try:
            # Ingest goes on at the primary; the paused standby does not see it.
            late = {**status, "building": "440305001002-0099"}
            store_batch(writer, [entry(4), message(LATE, "status", late)])
            settings = WebSettings(host="127.0.0.1", port=0, db=config.url,
                                   search_db=standby.url("t_1"), store_key=config.key_file,
                                   snapshot_dir=config.snapshot_dir)  # fmt: skip
            state = open_state(settings)
            try:
                client = TestClient(create_app(state))
                login = {"username": USERS["police"], "password": PASSWORD}
                assert client.post("/api/v1/login", json=login).status_code == 200  # primary
                search = {"gateway_id": GW, "purpose": "案件 7"}
                found = client.get("/api/v1/entries", params=search).json()
                assert [e["seq"] for e in found["entries"]] == [3, 2, 1]  # the standby's view
                fleet = client.get("/api/v1/gateways").json()["gateways"]
                assert [g["gateway_id"] for g in fleet] == [GW]
            finally:
                close_state(state)
        finally:
            paused.execute("SELECT pg_wal_replay_resume()")
    audited = writer.db.execute("SELECT action, records FROM audit").fetchall()
    assert [tuple(row) for row in audited] == [("entries.query", 3)]  # written on the primary
    writer.close()
