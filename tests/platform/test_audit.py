"""The police audit's hash chain and its signed anchors, tampered with as a database
administrator would (both engines): a row updated, one deleted, one inserted, the chain
rebuilt without the store key, rows cut from the end, the chain rebuilt with the key but
without the signing key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rental_platform.audit import (
    ANCHOR_DOMAIN,
    Anchor,
    AnchorFile,
    AuditError,
    AuditLog,
    chain_mac,
    verify,
)
from rental_platform.search import FilterError
from rental_platform.store import Store
from rental_platform.store.sealing import Sealer

SIGNING = Ed25519PrivateKey.generate()
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def audited(store: Store, tmp_path: Path) -> tuple[AuditLog, AnchorFile]:
    """Six rows, anchored after the fourth and after the sixth."""
    log = AuditLog(store.db, store.sealer)
    anchors = AnchorFile(tmp_path / "anchors.jsonl")
    for n in range(1, 7):
        params = {"card": 1000 + n, "id_number": "1101**********002X"}
        log.record(username="li.police", role="police", remote="10.0.0.7",
                   action="entries.query", purpose=f"案件 2026-{n}", params=params,
                   records=n)  # fmt: skip
        if n in (4, 6):
            assert log.anchor(SIGNING, anchors) is not None
    return log, anchors


def check(
    store: Store, anchors: AnchorFile, sealer: Sealer | None = None
) -> tuple[bool, int | None]:
    result = verify(store.db, sealer or store.sealer, anchors.read(), SIGNING.public_key())
    return result.ok, result.first_bad


def test_an_untouched_chain_verifies_up_to_its_last_anchor(
    store: Store, audited: tuple[AuditLog, AnchorFile]
) -> None:
    log, anchors = audited
    result = verify(store.db, store.sealer, anchors.read(), SIGNING.public_key())
    assert (result.ok, result.rows, result.anchored) == (True, 6, 6)
    assert [row.seq for row in log.page(limit=2)] == [6, 5]
    assert log.anchor(SIGNING, anchors) is None  # nothing new to vouch for


TAMPERING: dict[str, tuple[str, int]] = {
    "a row updated": ("UPDATE audit SET records = 0 WHERE seq = 3", 3),
    "a purpose rewritten": ("UPDATE audit SET purpose = '巡查' WHERE seq = 2", 2),
    "a row deleted": ("DELETE FROM audit WHERE seq = 2", 2),
    "a row inserted": (
        "INSERT INTO audit (seq, at, username, role, remote, action, purpose, params, records,"
        " mac) SELECT 7, at, username, role, remote, action, purpose, params, records, mac"
        " FROM audit WHERE seq = 6",
        7,
    ),
    "the tail cut off": ("DELETE FROM audit WHERE seq >= 5", 5),
}


@pytest.mark.parametrize("sql", TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_with_rows_is_found(
    store: Store, audited: tuple[AuditLog, AnchorFile], sql: tuple[str, int]
) -> None:
    statement, first_bad = sql
    with store.db.transaction():
        store.db.execute(statement)
    assert check(store, audited[1]) == (False, first_bad)


def rebuild(store: Store, sealer: Sealer, keep: Callable[[int], bool]) -> None:
    """Write the chain again from its rows kept, with `sealer`'s key, as a forger would."""
    db = store.db
    with db.transaction():
        rows = db.execute(
            "SELECT seq, at, username, role, remote, action, purpose, params, records"
            " FROM audit ORDER BY seq"
        ).fetchall()
        db.execute("DELETE FROM audit")
        previous = bytes(32)
        for new_seq, row in enumerate([r for r in rows if keep(int(r[0]))], 1):
            fields = (new_seq, float(row[1]), *row[2:8], int(row[8]))
            previous = chain_mac(sealer, previous, fields)
            db.execute(
                "INSERT INTO audit (seq, at, username, role, remote, action, purpose, params,"
                " records, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, previous),
            )


def test_a_chain_rebuilt_without_the_store_key_is_found(
    store: Store, audited: tuple[AuditLog, AnchorFile]
) -> None:
    rebuild(store, Sealer(bytes(32)), keep=lambda seq: True)
    assert check(store, audited[1]) == (False, 1)
    # It verifies under the forger's own key, row by row: the anchors still catch it.
    assert check(store, audited[1], Sealer(bytes(32)))[0] is False


def test_a_chain_rebuilt_with_the_store_key_but_a_row_left_out_is_found_by_its_anchor(
    store: Store, audited: tuple[AuditLog, AnchorFile]
) -> None:
    log, anchors = audited
    rebuild(store, store.sealer, keep=lambda seq: seq != 3)
    assert check(store, anchors) == (False, 4)  # row 4 is no longer the head anchored
    with pytest.raises(AuditError):  # and the platform will not sign the rewritten head
        log.anchor(SIGNING, anchors)


def test_an_anchor_not_signed_by_the_platform_is_refused(
    store: Store, audited: tuple[AuditLog, AnchorFile], tmp_path: Path
) -> None:
    forged = AnchorFile(tmp_path / "forged.jsonl")
    for anchor in audited[1].read():
        key = Ed25519PrivateKey.generate()
        unsigned = Anchor(anchor.seq, anchor.mac, anchor.at, "")
        sig = base64.b64encode(key.sign(ANCHOR_DOMAIN + unsigned.payload())).decode()
        forged.append(Anchor(anchor.seq, anchor.mac, anchor.at, sig))
    assert check(store, forged)[0] is False


def test_no_plaintext_id_number_enters_the_audit(store: Store) -> None:
    log = AuditLog(store.db, store.sealer)
    row: dict[str, Any] = {"username": "li.police", "role": "police", "remote": None, "records": 0}
    with pytest.raises(FilterError) as refused:
        log.record(action="entries.query", purpose="案件 1", params={"q": ID_NUMBER}, **row)
    assert refused.value.code == "params_id_number"
    with pytest.raises(FilterError) as refused:
        log.record(action="entries.query", purpose=f"嫌疑人 {ID_NUMBER.lower()}", params={}, **row)
    assert refused.value.code == "purpose_id_number"
    with pytest.raises(FilterError):
        log.record(action="id_number.reveal", purpose=None, params={}, **row)
    start = log.record(action="export.started", purpose="案件 1", params={}, **row)
    with pytest.raises(AuditError):
        log.record(action="export.finished", purpose=None, params={"start": start.seq + 5}, **row)
    log.record(action="export.finished", purpose=None, params={"start": start.seq}, **row)
    texts = json.dumps([r.params for r in log.page()]) + repr(log.page())
    assert ID_NUMBER not in texts.upper()
