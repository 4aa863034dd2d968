"""Storing batches: exactly once, acks from the database, floors, duplicates and conflicts.

Every test runs on SQLite and on PostgreSQL (the `platform_db` fixture).
"""

from __future__ import annotations

import json
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rental_platform.store import (
    Store,
    command,
    conflicts,
    events_for,
    gateway_row,
    rejects,
    resolve_conflict,
    store_batch,
    web_request,
)
from rental_platform.store.schema import MIGRATIONS, migrate

from .conftest import GW1, GW2, OpenStore, event, events, message


def seqs(store: Store, gateway_id: str = GW1) -> list[int]:
    return [e.seq for e in events_for(store, gateway_id)]


def test_a_gap_holds_the_ack_until_it_is_filled(store: Store) -> None:
    assert store_batch(store, events(GW1, 1, 2, 4, 5)).watermarks == {GW1: 2}
    outcome = store_batch(store, events(GW1, 3))
    assert outcome.watermarks == {GW1: 5}
    assert seqs(store) == [1, 2, 3, 4, 5]
    assert store.db.execute("SELECT count(*) FROM ahead").fetchone()[0] == 0


def test_the_floor_starts_contiguity_and_seqs_below_it_are_not_stored_again(store: Store) -> None:
    assert store_batch(store, events(GW1, 101, 102, acked=100)).watermarks == {GW1: 102}
    assert store_batch(store, events(GW1, 104)).watermarks == {GW1: 102}
    outcome = store_batch(store, events(GW1, 50))  # forgotten by the gateway long ago
    assert (outcome.stored, outcome.duplicates, outcome.resend_ack) == (0, 1, {GW1})
    assert store_batch(store, events(GW1, 105, acked=103)).watermarks == {GW1: 105}
    assert seqs(store) == [101, 102, 104, 105]
    assert gateway_row(store.db, GW1)["floor"] == 103


def test_a_resend_is_a_duplicate_even_written_differently(store: Store) -> None:
    body = event(GW1, 1)
    store_batch(store, [message(GW1, "events", body)])
    reordered = json.dumps(dict(reversed(body.items())), indent=1).encode()
    outcome = store_batch(store, [message(GW1, "events", body), message(GW1, "events", reordered)])
    assert (outcome.stored, outcome.duplicates, outcome.conflicts) == (0, 2, 0)
    assert outcome.resend_ack == {GW1}
    assert gateway_row(store.db, GW1)["duplicates"] == 2


def test_another_body_for_a_stored_seq_is_kept_and_holds_the_ack(store: Store) -> None:
    """A forged event took seq 2 first; the real seq 2 must not be acknowledged away."""
    forged = event(GW1, 2, event_id="forged", type="access.granted", door="main")
    real = event(GW1, 2)
    store_batch(store, [*events(GW1, 1), message(GW1, "events", forged)])
    assert gateway_row(store.db, GW1)["watermark"] == 2
    outcome = store_batch(store, [message(GW1, "events", real), *events(GW1, 3, 4)])
    assert (outcome.conflicts, outcome.resend_ack) == (1, set())
    # Both bodies are kept; the ack stays below the conflict, however far the gateway goes.
    assert outcome.watermarks == {GW1: 1}
    assert [c["event"] for c in conflicts(store, GW1)] == [real]
    assert events_for(store, GW1)[1].event["event_id"] == "forged"
    row = gateway_row(store.db, GW1)
    assert (row["watermark"], row["conflicts"], row["hold_below"]) == (4, 1, 2)
    # The same other body again is the same conflict, recorded once.
    assert store_batch(store, [message(GW1, "events", real)]).watermarks == {GW1: 1}
    assert len(conflicts(store, GW1)) == 1
    resolve_conflict(store.db, GW1, 2, now=0.0)
    assert store_batch(store, events(GW1, 5)).watermarks == {GW1: 5}


def test_migrations_are_applied_once_by_instances_starting_together(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(2)]
    again: list[list[int]] = []
    threads = [threading.Thread(target=lambda s=s: again.append(migrate(s.db))) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert again == [[], []]
    rows = stores[0].db.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]


def test_instances_racing_on_one_gateway_store_each_event_once(open_store: OpenStore) -> None:
    """Four instances store interleaved and repeated parts of two gateways' events."""
    stores = [open_store() for _ in range(4)]
    total = 400
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for start in range(1, total + 1, 20):
                chunk = [s for s in range(start, start + 20) if s % 4 == index or s % 7 == 0]
                store_batch(stores[index], events(GW1, *chunk) + events(GW2, *chunk))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for gateway_id in (GW1, GW2):
        assert seqs(stores[0], gateway_id) == list(range(1, total + 1))
        row = gateway_row(stores[0].db, gateway_id)
        assert (row["watermark"], row["conflicts"]) == (total, 0)
        assert row["duplicates"] == 3 * (total // 7)  # each 7th sent by all four


def test_the_first_result_of_a_command_wins_within_one_batch(store: Store) -> None:
    """A command published again is refused by the gateway as a replay; that refusal, even
    arriving in the same batch, must not hide what the first delivery did."""
    results = [
        b'{"counter": 7, "ok": true, "error": null}',
        b'{"counter": 7, "ok": false, "error": "replay"}',
    ]
    store_batch(store, [message(GW1, "cmd/result", r) for r in results])
    record = command(store.db, GW1, 7)
    assert record is not None
    assert (record.ok, record.error) == (True, None)


def test_the_latest_page_certificate_request_is_kept_and_a_bad_one_is_a_reject(
    store: Store,
) -> None:
    """`P/web/csr` (retained) lands in the database, where `certify --db` takes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{GW1}.rental.city.example")])
    first, second = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        for _ in range(2)
    )
    store_batch(store, [message(GW1, "web/csr", first, received_at=100.0)])
    store_batch(store, [message(GW1, "web/csr", second, received_at=200.0)])
    store_batch(store, [message(GW1, "web/csr", first, received_at=150.0)])  # a late resend
    assert web_request(store.db, GW1) == second
    assert web_request(store.db, GW2) is None
    damaged = second.replace(second[100:104], b"AAAA")
    outcome = store_batch(store, [message(GW2, "web/csr", damaged), message(GW2, "web/csr", b"x")])
    assert outcome.rejected == 2
    assert [r["reason"] for r in rejects(store)] == ["bad_request", "bad_request"]
    assert web_request(store.db, GW2) is None
