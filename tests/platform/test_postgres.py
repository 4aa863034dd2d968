"""What only PostgreSQL has: row locks between instances, monthly partitions, a server that
can be killed under a running platform."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from rental_platform import Platform, PlatformSettings
from rental_platform.store import (
    Store,
    StoreConfig,
    events_for,
    gateway_row,
    place_hold,
    release_hold,
    store_batch,
    upkeep,
)

from ..cloud.broker import Broker
from ..cloud.test_consumer import Gateway
from ..postgres import PostgresCluster
from .conftest import GW1, event, events, message

DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_config(postgres: PostgresCluster, tmp_path: Path) -> StoreConfig:
    return StoreConfig.for_url(
        postgres.new_database(),
        key_file=tmp_path / "store.key",
        snapshot_dir=tmp_path / "snapshots",
    )


@pytest.fixture
def pair(pg_config: StoreConfig) -> Iterator[tuple[Store, Store]]:
    first, second = Store.open(pg_config), Store.open(pg_config)
    yield first, second
    first.close()
    second.close()


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
            " current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_two_instances_storing_the_two_sides_of_a_gap(
    pair: tuple[Store, Store], pg_config: StoreConfig
) -> None:
    """Seq 2 stored by one instance while another stores seq 1: the later one must see both.

    Without the lock on the gateway's row the second would read watermark 0 and not see the
    uncommitted 2, advance to 1, and the first would stay at 0 too: a watermark stuck at 1
    with 2 stored, until some later event of that gateway.
    """
    first, second = pair
    store_batch(first, [*events(GW1, 3)[:0]])  # nothing: both connections are warm
    done: list[dict[str, int]] = []
    with first.db.transaction():
        assert store_batch(first, events(GW1, 2)).watermarks == {GW1: 0}
        other = threading.Thread(
            target=lambda: done.append(store_batch(second, events(GW1, 1)).watermarks)
        )
        other.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(pg_config.url):  # the second waits for our row lock
            assert time.monotonic() < deadline, "the second instance never waited"
            assert other.is_alive(), "the second instance did not wait for the first"
            time.sleep(0.01)
    other.join(30)
    assert done == [{GW1: 2}]
    assert gateway_row(first.db, GW1)["watermark"] == 2


def _partitions(store: Store) -> list[str]:
    rows = store.db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_months_are_partitions_and_held_events_outlive_theirs(pg_config: StoreConfig) -> None:
    store = Store.open(pg_config)
    now = datetime(2026, 12, 8, tzinfo=UTC).timestamp()
    old = datetime(2026, 3, 15, tzinfo=UTC).timestamp()  # past 180 days by December
    batch = [message(GW1, "events", event(GW1, seq), received_at=old) for seq in (1, 2, 3)]
    store_batch(store, [*batch, message(GW1, "events", event(GW1, 4), received_at=now)])
    upkeep(store, now - 200 * DAY)  # in May: nothing is old yet
    assert "events_y2026m03" in _partitions(store)
    hold = place_hold(store.db, "case 2026-117", [(GW1, 2)], now)
    assert (
        store.db.execute("SELECT tableoid::regclass::text FROM events WHERE seq = 2").fetchone()[0]
        == "events_held"
    )

    dropped = upkeep(store, now)
    assert dropped["months_dropped"] >= 1
    assert "events_y2026m03" not in _partitions(store)
    assert {"events_y2026m12", "events_y2027m01", "events_held"} <= set(_partitions(store))
    assert [e.seq for e in events_for(store, GW1)] == [2, 4]
    # Still found by (gateway_id, seq): a resend of it is a duplicate, not a new event.
    assert store_batch(store, [message(GW1, "events", event(GW1, 2))]).duplicates == 1

    release_hold(store, hold, now)
    assert [e.seq for e in events_for(store, GW1)] == [4]
    store.close()


def test_the_platform_survives_postgres_killed_and_restarted(
    postgres: PostgresCluster, pg_config: StoreConfig, tmp_path: Path
) -> None:
    """SIGKILL of PostgreSQL under a running platform, then a restart: the writer keeps its
    batch, PUBACKs nothing, retries with back-off, and every event is stored exactly once."""
    total = 600
    with Broker(tmp_path / "broker") as broker:
        settings = PlatformSettings(
            host=broker.host,
            port=broker.port,
            db=pg_config.url,
            store_key=pg_config.key_file,
            snapshot_dir=pg_config.snapshot_dir,
            client_id="platform-pg",
            ack_interval=0.02,
            backoff_base=0.05,
            backoff_cap=0.5,
        )
        gateway = Gateway(broker, GW1)
        with Platform(settings) as platform:
            platform.wait_connected()
            gateway.send(*range(1, 201))
            gateway.wait_ack(200)
            postgres.kill()
            gateway.send(*range(201, 401))  # received; not storable; not PUBACKed
            platform.wait_for(lambda: platform.stats.received >= 400, timeout=30)
            platform.wait_for(lambda: "database" in (platform.stats.last_error or ""), timeout=30)
            assert platform.running
            assert max(gateway.acks()) == 200
            postgres.start()
            gateway.send(*range(401, total + 1))
            gateway.wait_ack(total, timeout=60)
            stored = [e.seq for e in platform.events_for(GW1)]
        gateway.close()
    assert stored == list(range(1, total + 1))


def test_rental_platform_run_takes_a_postgresql_url(pg_config: StoreConfig, tmp_path: Path) -> None:
    """SPEC 8's `--db postgresql://USER@HOST:PORT/DB`, as the console program takes it."""
    with Broker(tmp_path / "broker") as broker:
        gateway = Gateway(broker, GW1)
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rental_platform",
                "run",
                "--db",
                pg_config.url,
                "--host",
                broker.host,
                "--port",
                str(broker.port),
                "--store-key",
                str(pg_config.key_file),
                "--snapshot-dir",
                str(pg_config.snapshot_dir),
                "--client-id",
                "platform-cli",
                "--stats-interval",
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:

            def stored_first() -> bool:
                gateway.send(1)  # until the instance's session exists, events pass it by
                return bool(gateway.acks())

            try:
                gateway.probe.wait_for(stored_first, timeout=30, what="first ack")
                gateway.send(2, 3)
                gateway.wait_ack(3)
            except TimeoutError:
                run.terminate()
                raise AssertionError(run.communicate(timeout=30)[1].decode()[-3000:]) from None
        finally:
            if run.poll() is None:
                run.terminate()
            _, err = run.communicate(timeout=30)
        gateway.close()
    assert run.returncode == 0, err.decode()[-2000:]
    store = Store.open(pg_config)
    assert [e.seq for e in events_for(store, GW1)] == [1, 2, 3]
    store.close()
