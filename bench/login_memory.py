"""Resident memory of the web server under a burst of parallel failed logins.

Each argon2id check takes 19 MiB; a burst of logins hashed on every worker thread at once
grows the process by that much per thread, and glibc keeps much of it in per-thread arenas
afterwards. This serves the real application (`create_app` with uvicorn, `WebServer`) in a
child process over a store on disk, fires `--logins` logins at once (one thread and client
each, released together; wrong passwords for `--logins` different usernames, so the lockout of
one name does not stop them), `--rounds` times, and reads the child's VmRSS and VmHWM (peak)
from /proc: before, after each burst, and `--settle` seconds after the last.

`--source DIR` runs the server from another checkout (e.g. an export of an older commit), so
the same burst can be measured before and after a change; `--env NAME=VALUE` sets a variable
for the server only (e.g. `MALLOC_ARENA_MAX=2`).

    .venv/bin/python -m bench.login_memory --logins 100 --rounds 3 --settle 30
    git archive main | tar -x -C /tmp/main-src
    .venv/bin/python -m bench.login_memory --source /tmp/main-src --name login_memory_main
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_rss import status_kib

REPO = Path(__file__).resolve().parent.parent
USER = ("head", "building_head", "Lou-zhang 2026 kai men")


def serve(data_dir: Path) -> None:
    """The child: a store with one user and the web application on a free loopback port."""
    from gateway.store import Store
    from gateway.web.app import create_app
    from gateway.web.server import WebServer
    from tests.web.building import BuildingGateway

    with Store.open(data_dir, "gw-bench-0001") as store:
        store.add_user(USER[0], USER[1], USER[2])
        server = WebServer(create_app(BuildingGateway(store, data_dir)), "127.0.0.1", 0)
        server.start()
        print(server.url, flush=True)
        sys.stdin.read()  # until the parent closes it
        server.stop()


def burst(url: str, logins: int, round_no: int) -> Counter[int]:
    """`logins` failed logins at once, one thread each; the count of each status."""
    gate = threading.Barrier(logins)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            gate.wait()
            response = client.post(
                "/api/v1/login",
                json={"username": f"guess-{round_no}-{i:04d}", "password": "not the password 1"},
            )
        with lock:
            statuses[response.status_code] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(logins)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    source = Path(args.source).resolve() if args.source else REPO
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(pair.split("=", 1) for pair in args.env)
    with tempfile.TemporaryDirectory(prefix="bench-login-mem-") as tmp:
        # -P: the script's folder (bench/) is not put on sys.path; the code comes from `source`.
        child = subprocess.Popen(
            [sys.executable, "-P", str(Path(__file__).resolve()), "--serve", tmp],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=source,
            env=env,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            url = child.stdout.readline().strip()
            if not url.startswith("http"):
                raise SystemExit("the server did not start")
            with httpx.Client(base_url=url) as client:  # warm: imports, one hash, one page
                client.post("/api/v1/login", json={"username": USER[0], "password": USER[2]})
                client.get("/healthz")
            before = status_kib(child.pid)
            rounds = []
            for round_no in range(args.rounds):
                statuses = burst(url, args.logins, round_no)
                now = status_kib(child.pid)
                rounds.append(
                    {
                        "statuses": dict(sorted(statuses.items())),
                        "rss_mib": mib(now["VmRSS"]),
                        "peak_mib": mib(now["VmHWM"]),
                    }
                )
            time.sleep(args.settle)
            settled = status_kib(child.pid)
            child.stdin.close()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    return {
        "logins_per_round": args.logins,
        "source": "this checkout" if not args.source else str(args.source),
        "env": args.env,
        "rss_before_mib": mib(before["VmRSS"]),
        "rounds": rounds,
        "peak_mib": mib(settled["VmHWM"]),
        "growth_at_peak_mib": mib(settled["VmHWM"] - before["VmRSS"]),
        f"rss_{args.settle}s_after_mib": mib(settled["VmRSS"]),
        "still_held_mib": mib(settled["VmRSS"] - before["VmRSS"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=int, default=30, help="seconds to wait at the end")
    parser.add_argument("--source", help="run the server from this checkout")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--name", default="login_memory", help="result file name")
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve))
        return
    from bench._common import machine, save

    save(args.name, {"machine": machine(), **run(args)})


if __name__ == "__main__":
    main()
