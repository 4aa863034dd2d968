"""What a door's journal commit costs while something else writes to the same disk.

A door commit is durable before the relay moves (`synchronous=FULL`): its time is mostly the
fsync, and an fsync returns when the device has written what it holds, everyone's. This
measures that floor apart from the gateway: one process commits a door-sized row every 50 ms
through the store's own writer connection (`gateway.store.db.connect_writer`), while another
process writes to a file beside it at a set rate (buffered 256 KiB writes, fdatasync every
4 MiB, as a bulk SQLite writer commits). Phases of `--seconds` each, per rate in `--rates`
MB/s (0 = nothing else writing, -1 = as fast as the disk takes). Run as root, the last phase
repeats the fastest rate with the committing process in real-time CPU scheduling (SCHED_RR)
and the real-time I/O class, to show whether either knob shortens the wait.

    .venv/bin/python -m bench.commit_contention --seconds 20 --rates 0 1 4 16 -1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import machine, percentiles, save
from gateway.store.db import connect_writer

CHUNK = 256 * 1024
SYNC_EVERY = 16  # chunks: 4 MiB
ROW = "x" * 300  # about an access.granted event's journal row
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_RT = 1


def write_at(path: Path, mb_per_s: float, seconds: float) -> float:
    """The other writer: `mb_per_s` of buffered writes (negative: unthrottled), fdatasync
    every 4 MiB, the file cut back every 256 MiB. Returns the MB/s it wrote."""
    chunk = os.urandom(CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.monotonic()
    written = 0
    while (now := time.monotonic()) - start < seconds:
        if mb_per_s > 0:
            due = written / (mb_per_s * 1e6)
            if due > now - start:
                time.sleep(min(due - (now - start), 0.05))
                continue
        os.write(fd, chunk)
        written += CHUNK
        if (written // CHUNK) % SYNC_EVERY == 0:
            os.fdatasync(fd)
        if written % (256 << 20) == 0:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
    os.close(fd)
    return written / 1e6 / (time.monotonic() - start)


def commit_times(db: Path, seconds: float) -> list[float]:
    """One door-sized commit every 50 ms for `seconds`; each commit's milliseconds."""
    conn = connect_writer(db)
    conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT)")
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (body) VALUES (?)", (ROW,))
        conn.execute("COMMIT")
        times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.05)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return times


def realtime() -> bool:
    """This process first for the CPU and the disk, if allowed."""
    import ctypes

    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    except PermissionError:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    ioprio = _IOPRIO_CLASS_RT << 13  # level 0, the highest
    number = 251 if os.uname().machine == "x86_64" else 30  # ioprio_set
    return bool(libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, ioprio) == 0)


def phase(folder: Path, rate: float, seconds: float, *, rt: bool = False) -> dict[str, Any]:
    other = None
    if rate:
        command = [sys.executable, "-m", "bench.commit_contention", "--writer", str(rate),
                   "--seconds", str(seconds + 1), "--dir", str(folder)]  # fmt: skip
        other = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
    try:
        if rt and not realtime():
            return {"rate_mb_s": rate, "realtime": "not allowed"}
        times = commit_times(folder / "door.db", seconds)
    finally:
        achieved = None
        if other is not None:
            out, _ = other.communicate(timeout=seconds + 60)
            achieved = float(out.strip() or "nan")
        if rt:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return {"rate_mb_s": rate, "written_mb_s": achieved, "realtime": rt,
            "commit_ms": percentiles(times)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 1, 4, 16, -1])
    parser.add_argument("--dir", type=Path, help="a folder on the disk to measure")
    parser.add_argument("--writer", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer is not None:
        print(round(write_at(args.dir / "other.bin", args.writer, args.seconds), 1))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="contention-") as name:
        folder = Path(name)
        phases = [phase(folder, rate, args.seconds) for rate in args.rates]
        if os.geteuid() == 0:
            fastest = -1 if -1 in args.rates else max(args.rates)
            phases.append(phase(folder, fastest, args.seconds, rt=True))
    save("commit_contention", {"machine": machine(), "seconds": args.seconds, "phases": phases})


if __name__ == "__main__":
    main()
