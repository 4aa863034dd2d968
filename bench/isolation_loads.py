"""The loads of bench.door_isolation, each run as a process of its own.

    python -m bench.isolation_loads slow --url http://127.0.0.1:8080 --stats slow.json --count 1100

Every load runs until SIGTERM (or `--seconds`), then finishes what it has in flight (bounded
by its own timeouts), writes its figures to `--stats` and exits; the figures are also written
after every round, so the bench sees progress. Times are `time.monotonic()`, which on Linux is
one clock for every process, so the bench can set them against its own swipes.

- `slow`: connections to the web port that send a request line and headers a few bytes at a
  time and never finish them; each one closed is opened again.
- `logins`: waves of parallel `POST /api/v1/login` with a wrong password.
- `import`: the building head's tenant CSV import, as the page's form posts it, again and again.
- `export`: the police CSV export of a time window, again and again.
- `probe`: how long SQLite's write lock is held by anyone (a `BEGIN IMMEDIATE` that never waits,
  tried every 10 ms and every 2 ms while refused).
- `proxy`: a TCP proxy (tests/cloud/proxy.py) for the uplink; `partition` and `heal` on stdin.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import resource
import selectors
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.store.factories import id_number

# The slow connections trickle one header line this often, as a slowloris client does.
TRICKLE_SECONDS = 10.0
# Connections opened per 50 ms at most: the listen backlog of the web part is 64.
OPEN_PER_TICK = 40
SAMPLE_SECONDS = 0.5
PROBE_IDLE_SECONDS = 0.010
PROBE_BUSY_SECONDS = 0.002
PROBE_WRITE_SECONDS = 5.0
CSV_HEADER = "room,name,id_number,phone,card,valid_from,valid_until\n"
IMPORT_FIRST_CARD = 20_000_000
IMPORT_ID_OFFSET = 3_000_000  # ID numbers of tenants the registry seed never uses
IMPORT_REGION = "110105"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# The page's words for a finished import (gateway/web/i18n.py "import.result", in Chinese).
_IMPORT_DONE = re.compile(r"新增 (\d+) 户，更新 (\d+) 户（其中未变 \d+ 户），新增门卡 (\d+) 张")


class Stats:
    """A load's figures, written atomically to a JSON file."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"kind": kind, "rounds": 0, "pid": os.getpid()}
        self.lock = threading.Lock()

    def write(self) -> None:
        with self.lock:
            body = json.dumps(self.data)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(body)
        temp.replace(self.path)


def stopper(seconds: float) -> threading.Event:
    """An event set by SIGTERM, SIGINT, or after `seconds`."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return stop


# ------------------------------------------------------------------------------ slow


def slow_connections(url: str, count: int, stop: threading.Event, stats: Stats) -> None:
    """Hold `count` connections whose request headers never end; reopen the ones closed."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))
    selector = selectors.DefaultSelector()
    held: dict[socket.socket, float] = {}  # established -> next trickle (monotonic)
    connecting: set[socket.socket] = set()
    counts: Counter[str] = Counter()
    samples: list[tuple[float, int]] = []
    stats.data.update(target=count, samples=samples, counts=counts)
    next_sample = time.monotonic()

    def close(sock: socket.socket) -> None:
        selector.unregister(sock)
        held.pop(sock, None)
        connecting.discard(sock)
        sock.close()

    def open_one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            counts[f"connect_error_{errno.errorcode.get(code, code)}"] += 1
            sock.close()
            return
        counts["opened"] += 1
        connecting.add(sock)
        selector.register(sock, selectors.EVENT_WRITE)

    try:
        while not stop.is_set():
            now = time.monotonic()
            for _ in range(min(OPEN_PER_TICK, count - len(held) - len(connecting))):
                try:
                    open_one()
                except OSError as exc:
                    counts[f"connect_error_{errno.errorcode.get(exc.errno or 0, 'os')}"] += 1
                    break
            for key, _events in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in connecting:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        counts[f"connect_error_{errno.errorcode.get(code, code)}"] += 1
                        close(sock)
                        continue
                    connecting.discard(sock)
                    try:
                        sock.send(b"GET / HTTP/1.1\r\nHost: " + address[0].encode() + b"\r\n")
                    except OSError:
                        counts["closed_by_server"] += 1
                        close(sock)
                        continue
                    held[sock] = time.monotonic() + TRICKLE_SECONDS
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                counts["answered" if data else "closed_by_server"] += 1
                close(sock)
            now = time.monotonic()
            for sock, due in list(held.items()):
                if due <= now:
                    try:
                        sock.send(b"X-Slow: 1\r\n")
                        held[sock] = now + TRICKLE_SECONDS
                    except OSError:
                        counts["closed_by_server"] += 1
                        close(sock)
            if now >= next_sample:
                with stats.lock:
                    samples.append((round(now, 3), len(held)))
                if len(held) >= count and not stats.data["rounds"]:
                    stats.data["rounds"] = 1  # every connection held once
                    stats.data["all_held_at"] = round(now, 3)
                stats.write()
                next_sample = now + SAMPLE_SECONDS
    finally:
        for sock in list(held) + list(connecting):
            close(sock)
        selector.close()


# ---------------------------------------------------------------------------- logins


def failed_logins(url: str, parallel: int, stop: threading.Event, stats: Stats) -> None:
    """Waves of `parallel` logins with a wrong password, each under a name of its own (every
    one costs the server a full password hash; a known name would be locked out after 5)."""
    local = threading.local()
    waves: list[dict[str, Any]] = []
    stats.data["waves"] = waves

    def one(wave: int, n: int) -> tuple[str, float]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=120)
        started = time.monotonic()
        try:
            response = client.post(
                "/api/v1/login",
                json={"username": f"guess-{wave}-{n}", "password": "not-the-password-2026"},
            )
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return status, (time.monotonic() - started) * 1000

    with ThreadPoolExecutor(parallel, thread_name_prefix="login") as pool:
        wave = 0
        while not stop.is_set():
            started = time.monotonic()
            answers = list(pool.map(lambda n, w=wave: one(w, n), range(parallel)))
            ms = sorted(a[1] for a in answers)
            with stats.lock:
                waves.append(
                    {
                        "start": round(started, 3),
                        "end": round(time.monotonic(), 3),
                        "statuses": dict(Counter(a[0] for a in answers)),
                        "ms_p50": round(ms[len(ms) // 2], 1),
                        "ms_max": round(ms[-1], 1),
                    }
                )
                stats.data["rounds"] += 1
            stats.write()
            wave += 1


# ---------------------------------------------------------------------------- import


def tenant_csv(rows: int, round_number: int) -> bytes:
    """`rows` valid tenants, each with one card; `valid_until` moves a day per round, so every
    round after the first updates every row."""
    until = (date(2027, 6, 30) + timedelta(days=round_number)).isoformat()
    since = (date.today() - timedelta(days=30)).isoformat()
    lines = [CSV_HEADER]
    for n in range(rows):
        room = f"{n // 400 % 30 + 1:02d}{n % 20 + 1:02d}"
        lines.append(
            f"{room},租客{n},{id_number(IMPORT_ID_OFFSET + n, IMPORT_REGION)},"
            f"137{n:08d},{IMPORT_FIRST_CARD + n},{since},{until}\n"
        )
    return "".join(lines).encode()


def page_login(client: httpx.Client, username: str, password: str) -> None:
    """Log in through the page's form (the session cookie stays in `client`), trying again
    as a person would while the page says it is busy (503 while the failed-login flood holds
    every password check; at most a minute)."""
    for _ in range(120):
        response = client.post("/login", data={"username": username, "password": password})
        if response.status_code == 303:
            return
        if response.status_code not in (429, 503):
            break
        time.sleep(float(response.headers.get("Retry-After", "1")) / 2)
    raise RuntimeError(f"login {username}: {response.status_code}")


def tenant_imports(
    url: str,
    rows: int,
    first_round: int,
    user: tuple[str, str],
    stop: threading.Event,
    stats: Stats,
) -> None:
    """The page's import form, posted with a fresh CSV as soon as the last one is done."""
    imports: list[dict[str, Any]] = []
    stats.data["imports"] = imports
    with httpx.Client(base_url=url, timeout=1800) as client:
        page_login(client, *user)
        found = _CSRF.search(client.get("/import").text)
        if found is None:
            raise RuntimeError("no CSRF token on the import page")
        csrf = found.group(1)
        number = first_round
        while not stop.is_set():
            data = tenant_csv(rows, number)
            started = time.monotonic()
            response = client.post(
                "/import",
                data={"csrf_token": csrf},
                files={"file": ("tenants.csv", data, "text/csv")},
            )
            ended = time.monotonic()
            done = _IMPORT_DONE.search(response.text)
            record: dict[str, Any] = {
                "start": round(started, 3),
                "end": round(ended, 3),
                "status": response.status_code,
                "rows": rows,
                "bytes": len(data),
                "seconds": round(ended - started, 2),
                "rows_per_second": round(rows / (ended - started)),
            }
            if done is not None:
                record.update(
                    added=int(done.group(1)), updated=int(done.group(2)), cards=int(done.group(3))
                )
            with stats.lock:
                imports.append(record)
                stats.data["rounds"] += done is not None  # a refusal is not a round
            stats.write()
            number += 1


# ---------------------------------------------------------------------------- export


def police_exports(
    url: str, since: str, until: str, user: tuple[str, str], stop: threading.Event, stats: Stats
) -> None:
    """The police CSV export of [since, until), downloaded in full, again and again."""
    exports: list[dict[str, Any]] = []
    stats.data["exports"] = exports
    with httpx.Client(base_url=url, timeout=600) as client:
        page_login(client, *user)
        number = 0
        while not stop.is_set():
            params = {"purpose": f"刑侦 2026-{number:05d} bench", "since": since, "until": until}
            started = time.monotonic()
            size, lines, complete = 0, 0, False
            with client.stream("GET", "/police/export.csv", params=params) as response:
                status = response.status_code
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    if stop.is_set():
                        break  # cut: the bench wants the load off now
                else:
                    complete = True
            ended = time.monotonic()
            with stats.lock:
                exports.append(
                    {
                        "start": round(started, 3),
                        "end": round(ended, 3),
                        "status": status,
                        "rows": max(lines - 1, 0),
                        "bytes": size,
                        "complete": complete,
                        "seconds": round(ended - started, 2),
                    }
                )
                stats.data["rounds"] += complete and status == 200
            stats.write()
            number += 1


# ----------------------------------------------------------------------------- probe


def lock_probe(db_path: Path, stop: threading.Event, stats: Stats) -> None:
    """Record every stretch in which SQLite's write lock was held by someone else."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    held: list[tuple[float, float]] = []  # (first refused, ms until granted)
    stats.data["held"] = held
    attempts = 0
    next_write = time.monotonic() + PROBE_WRITE_SECONDS
    try:
        while not stop.is_set():
            attempts += 1
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                refused = time.monotonic()
                while not stop.is_set():
                    time.sleep(PROBE_BUSY_SECONDS)
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.execute("ROLLBACK")
                        break
                    except sqlite3.OperationalError:
                        continue
                with stats.lock:
                    held.append((round(refused, 4), round((time.monotonic() - refused) * 1000, 1)))
            if time.monotonic() >= next_write:  # the bench saves what it has after each block
                stats.data["attempts"] = attempts
                stats.write()
                next_write = time.monotonic() + PROBE_WRITE_SECONDS
            time.sleep(PROBE_IDLE_SECONDS)
    finally:
        stats.data["attempts"] = attempts
        conn.close()


# ----------------------------------------------------------------------------- proxy


def proxy(target_host: str, target_port: int) -> None:
    """A FaultProxy to the broker; prints its port, then obeys `partition` / `heal` / `quit`."""
    from tests.cloud.proxy import FaultProxy

    with FaultProxy(target_host, target_port) as fault:
        print(fault.port, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "partition":
                fault.partition()
            elif command == "heal":
                fault.heal()
            elif command == "quit":
                break
            print("ok", flush=True)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["slow", "logins", "import", "export", "probe", "proxy"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--seconds", type=float, default=3600.0, help="stop after this at most")
    parser.add_argument("--count", type=int, default=100, help="connections, logins or rows")
    parser.add_argument("--first-round", type=int, default=0)
    parser.add_argument("--user", nargs=2, default=["head1", ""])
    parser.add_argument("--since", default="")
    parser.add_argument("--until", default="")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--target", nargs=2, default=["127.0.0.1", "1883"])
    args = parser.parse_args(argv)
    if args.kind == "proxy":
        proxy(args.target[0], int(args.target[1]))
        return
    stop = stopper(args.seconds)
    stats = Stats(args.stats, args.kind)
    stats.write()
    runs: dict[str, Callable[[], None]] = {
        "slow": lambda: slow_connections(args.url, args.count, stop, stats),
        "logins": lambda: failed_logins(args.url, args.count, stop, stats),
        "import": lambda: tenant_imports(
            args.url, args.count, args.first_round, tuple(args.user), stop, stats
        ),
        "export": lambda: police_exports(
            args.url, args.since, args.until, tuple(args.user), stop, stats
        ),
        "probe": lambda: lock_probe(args.db, stop, stats),
    }
    try:
        runs[args.kind]()
    except Exception as exc:
        stats.data["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        stats.data["stopped"] = round(time.monotonic(), 3)
        stats.write()


if __name__ == "__main__":
    main()
