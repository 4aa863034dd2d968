"""Crash safety: a process killed with SIGKILL mid-burst loses no committed event."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import GATEWAY_ID

# Four threads append as fast as they can; each prints "seq event_id" only after
# append_event returned, i.e. after COMMIT. Whatever it printed must survive the kill.
CHILD = """
import sys, threading
from pathlib import Path
from gateway.store import Store

store = Store.open(Path(sys.argv[1]), sys.argv[2])
lock = threading.Lock()

def burst(door):
    while True:
        entry = store.append_event({"type": "reader.online", "door": door})
        with lock:
            sys.stdout.write(f"{entry.seq} {entry.event_id}\\n")
            sys.stdout.flush()

threads = [threading.Thread(target=burst, args=(f"d{n}",)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def run_and_kill(data_dir: Path, after_lines: int) -> dict[int, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), GATEWAY_ID],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported: dict[int, str] = {}
    for line in child.stdout:
        seq, event_id = line.split()
        reported[int(seq)] = event_id
        if len(reported) >= after_lines:
            os.kill(child.pid, signal.SIGKILL)
            break
    # Lines written before the kill are still in the pipe; a torn last line has no newline.
    for line in child.stdout:
        if line.endswith("\n"):
            seq, event_id = line.split()
            reported[int(seq)] = event_id
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return reported


def test_sigkill_mid_burst_keeps_every_reported_event(data_dir: Path) -> None:
    reported: dict[int, str] = {}
    for round_ in range(3):
        reported |= run_and_kill(data_dir, after_lines=150 * (round_ + 1))
        conn = sqlite3.connect(data_dir / "gateway.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT seq, event_id FROM events ORDER BY seq").fetchall())
        conn.close()
        assert list(stored) == list(range(1, len(stored) + 1)), "seq has a gap or a repeat"
        missing = {seq for seq, event_id in reported.items() if stored.get(seq) != event_id}
        assert not missing, f"committed events lost: {sorted(missing)[:10]}"
