"""Web API latency over a real store: police entry queries, the tenant list, logins.

Serves the real FastAPI app (`create_app`) with uvicorn on loopback (`WebServer`), over a
store on disk holding `--tenants` tenants (one card each, two a room) and a journal of
`--events` access events like the door path's, spread over the past year, acknowledged and
block-indexed (the bench waits for the writer to catch up before measuring). Then, through
one keep-alive httpx client per user, in a shuffled mix:

- `GET /api/v1/entries?purpose=...` (police; each query also appends an audit row) by card,
  by room, by tenant_id, by door within one day, newest 100 without a filter, and denied
  entries within one week: `--queries` of each;
- `GET /api/v1/tenants?limit=100&offset=...` and `?room=...` (building head);
- `POST /api/v1/login` (`--logins` of them; argon2id as in web_security/passwords.py).

Server time is from a timing ASGI middleware added by the bench, outermost, around the whole
app (request in to response start, sent back as a `Server-Timing` header); client time is
the request's round trip as httpx sees it. A few requests of each kind are made
first and not counted. `--dir` keeps the store there and reuses it on the next run (default: a
temporary directory, removed afterwards).

    .venv/bin/python -m bench.web --events 1000000 --tenants 2000 --queries 200
    .venv/bin/python -m bench.web --dir /var/tmp/bench-web     # seeds once, then reuses
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench._common import machine, percentiles, save
from bench.bytes_per_event import _append_prepared, settle
from gateway.store import NotFound, Store, journal
from gateway.store.bulk import seed_synthetic_registry
from gateway.web.app import create_app
from gateway.web.server import WebServer
from tests.web.building import BuildingGateway
from web_security import passwords

GATEWAY_ID = "gw-440305-0042"
ZONE = timezone(timedelta(hours=8))
SPAN_DAYS = 365
# Doors of a building and how often each is used.
DOORS = {"main": 0.6, "north": 0.2, "garage": 0.15, "bikes": 0.05}
DENIED_SHARE = 0.1
UNKNOWN_SHARE = 0.4  # of the denials: a card nobody holds (no tenant, no room)
DENIED_KNOWN = ("expired", "moved_out", "suspended", "lost_card", "revoked_card")
CHUNK = 20_000  # events per seeding transaction
WARMUP = 5  # uncounted requests of each kind
USERS = {
    "police": ("police1", "police", "Min-jing an jian 4711 bench"),
    "head": ("head1", "building_head", "Lou-zhang 2026 kai men bench"),
}
ENTRY_GOAL_P95_MS = 50.0
TENANT_GOAL_MS = 100.0


class ServerTiming:
    """ASGI middleware: milliseconds from request to response start, as `Server-Timing`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []), (b"server-timing", b"app;dur=%.3f" % ms)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


# ------------------------------------------------------------------------------ seeding


def access_event(rng: random.Random, holders: list[tuple[int, str, str]], first_unknown: int,
                 at: datetime) -> dict[str, Any]:  # fmt: skip
    """One swipe as the door path journals it (gateway/door.py, gateway/service.py)."""
    number, tenant_id, room = rng.choice(holders)
    denied = rng.random() < DENIED_SHARE
    reason = "tenant_card"
    who: dict[str, str | None] = {"tenant_id": tenant_id, "room": room}
    if denied:
        if rng.random() < UNKNOWN_SHARE:
            number, reason = first_unknown + rng.randrange(1_000_000), "unknown_card"
            who = {"tenant_id": None, "room": None}
        else:
            reason = rng.choice(DENIED_KNOWN)
    return {
        "type": "access.denied" if denied else "access.granted",
        "ts": at.isoformat(timespec="milliseconds"),
        "clock_synced": True,
        "door": rng.choices(list(DOORS), weights=list(DOORS.values()))[0],
        "credential": {"kind": "card", "number": number},
        **who,
        "reason": reason,
        "snapshot": None,
        "snapshot_error": "disabled",
    }


def seed_events(store: Store, events: int) -> None:
    """Journal `events` acknowledged access events, oldest first, over the last SPAN_DAYS."""
    holders = [(int(n), str(t), str(r)) for n, t, r in store.reader().execute(
        "SELECT c.number, t.id, t.room FROM cards AS c JOIN tenants AS t ON t.id = c.tenant_id"
    )]  # fmt: skip
    first_unknown = max(h[0] for h in holders) + 1_000_000
    rng = random.Random(2)
    end = datetime.now(ZONE)
    start = end - timedelta(days=SPAN_DAYS)
    step = (end - start) / events
    ctx = store.ctx
    # Prepared on this thread while the writer inserts the previous chunk.
    with ThreadPoolExecutor(1, thread_name_prefix="seed-submit") as submitter:
        writing: Future[None] | None = None
        for done in range(0, events, CHUNK):
            batch = [
                journal.prepare_event(ctx, access_event(rng, holders, first_unknown,
                                                        start + step * n))
                for n in range(done, min(done + CHUNK, events))
            ]  # fmt: skip
            if writing is not None:
                writing.result()
            writing = submitter.submit(store.transaction, partial(_append_prepared, ctx, batch))
        if writing is not None:
            writing.result()
    store.acknowledge(journal.last_seq(store.reader()))


def prepare_store(store: Store, events: int, tenants: int) -> dict[str, Any]:
    """Seed what is missing (registry, journal, users); say how long each part took."""
    reader = store.reader()
    have_tenants = reader.execute("SELECT count(*) FROM tenants").fetchone()[0]
    have_events = journal.last_seq(reader)
    timings: dict[str, Any] = {"reused": bool(have_tenants or have_events)}
    if have_tenants and have_events:
        if have_tenants != tenants or have_events < events:
            print(f"note: reusing a store with {have_tenants} tenants, {have_events} events")
    elif have_tenants or have_events:
        raise SystemExit("--dir holds a store with only part of the data: use an empty one")
    else:
        started = time.monotonic()
        seed_synthetic_registry(store, tenants=tenants)
        timings["registry_seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        seed_events(store, events)
        timings["events_seconds"] = round(time.monotonic() - started, 1)
        print(f"seeded {tenants} tenants in {timings['registry_seconds']} s, {events} events in"
              f" {timings['events_seconds']} s; indexing", flush=True)  # fmt: skip
    started = time.monotonic()
    settle(store, timeout=1800)
    timings["index_settle_seconds"] = round(time.monotonic() - started, 1)
    for username, role, password in USERS.values():
        try:
            store.get_user(username)
        except NotFound:
            store.add_user(username, role, password)
    return timings


# --------------------------------------------------------------------------- measuring


Request = tuple[str, str, dict[str, Any]]  # kind, path, query parameters


def timed_get(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, float, int]:
    """(server ms, client ms, items in the JSON answer) of one GET that must succeed."""
    started = time.perf_counter()
    response = client.get(path, params=params)
    client_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:300]}")
    body = response.json()
    items = len(body["entries"]) if isinstance(body, dict) else len(body)
    return server_ms(response), client_ms, items


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def entry_requests(store: Store, rng: random.Random) -> dict[str, Callable[[], dict[str, Any]]]:
    """The police query kinds, each a maker of random parameters."""
    reader = store.reader()
    cards = [row[0] for row in reader.execute("SELECT number FROM cards")]
    tenant_ids = [row[0] for row in reader.execute("SELECT id FROM tenants")]
    rooms = [row[0] for row in reader.execute("SELECT DISTINCT room FROM tenants")]
    first_ms, last_ms = reader.execute(
        "SELECT (SELECT ts_ms FROM events ORDER BY seq LIMIT 1),"
        " (SELECT ts_ms FROM events ORDER BY seq DESC LIMIT 1)"
    ).fetchone()
    first = datetime.fromtimestamp(first_ms / 1000, ZONE).replace(
        hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)  # fmt: skip
    days = max((last_ms - first_ms) // 86_400_000 - 1, 1)
    purposes = iter(range(1, 10**9))

    def base() -> dict[str, Any]:
        return {"purpose": f"刑侦 2026-{next(purposes):05d}"}

    def day_range(length: int) -> dict[str, str]:
        since = first + timedelta(days=rng.randrange(max(days - length + 1, 1)))
        return {"since": since.isoformat(), "until": (since + timedelta(days=length)).isoformat()}

    return {
        "card": lambda: {**base(), "card": rng.choice(cards)},
        "room": lambda: {**base(), "room": rng.choice(rooms)},
        "tenant_id": lambda: {**base(), "tenant_id": rng.choice(tenant_ids)},
        "door, one day": lambda: {**base(), "door": rng.choice(list(DOORS)), **day_range(1)},
        "newest 100": base,
        "denied, one week": lambda: {**base(), "result": "denied", **day_range(7)},
    }


def tenant_requests(store: Store, rng: random.Random) -> dict[str, Callable[[], dict[str, Any]]]:
    reader = store.reader()
    count = reader.execute("SELECT count(*) FROM tenants").fetchone()[0]
    rooms = [row[0] for row in reader.execute("SELECT DISTINCT room FROM tenants")]
    return {
        "page of 100": lambda: {"limit": 100, "offset": rng.randrange(0, max(count, 1), 100)},
        "room": lambda: {"room": rng.choice(rooms)},
    }


def run_mix(client: httpx.Client, path: str, makers: dict[str, Callable[[], dict[str, Any]]],
            rounds: int, rng: random.Random) -> dict[str, Any]:  # fmt: skip
    """`rounds` requests of each kind in a shuffled order (after WARMUP uncounted each)."""
    for make in makers.values():
        for _ in range(WARMUP):
            timed_get(client, path, make())
    order = [kind for kind in makers for _ in range(rounds)]
    rng.shuffle(order)
    server: dict[str, list[float]] = {kind: [] for kind in makers}
    seen: dict[str, list[float]] = {kind: [] for kind in makers}
    items: dict[str, list[int]] = {kind: [] for kind in makers}
    for kind in order:
        s_ms, c_ms, n = timed_get(client, path, makers[kind]())
        server[kind].append(s_ms)
        seen[kind].append(c_ms)
        items[kind].append(n)
    by_kind = {
        kind: {
            "server_ms": percentiles(server[kind]),
            "client_ms": percentiles(seen[kind]),
            "rows_mean": round(sum(items[kind]) / len(items[kind]), 1),
        }
        for kind in makers
    }
    return {
        "mix": {
            "server_ms": percentiles([v for vs in server.values() for v in vs]),
            "client_ms": percentiles([v for vs in seen.values() for v in vs]),
        },
        "by_kind": by_kind,
    }


def login(client: httpx.Client, user: str) -> tuple[float, float]:
    username, _, password = USERS[user]
    started = time.perf_counter()
    response = client.post("/api/v1/login", json={"username": username, "password": password})
    client_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or "csrf_token" not in response.json():
        raise RuntimeError(f"login {username}: {response.status_code} {response.text[:300]}")
    return server_ms(response), client_ms


def run_logins(client: httpx.Client, count: int) -> dict[str, Any]:
    login(client, "police")  # warm-up
    server, seen = [], []
    for n in range(count):
        s_ms, c_ms = login(client, "police" if n % 2 else "head")
        server.append(s_ms)
        seen.append(c_ms)
    hashed = passwords.hash_password(USERS["police"][2])
    verify = []
    for _ in range(min(count, 20)):
        started = time.perf_counter()
        assert passwords.verify_password(hashed, USERS["police"][2]).ok
        verify.append((time.perf_counter() - started) * 1000)
    return {
        "argon2id": {
            "t": passwords.TIME_COST,
            "m_kib": passwords.MEMORY_COST_KIB,
            "p": passwords.PARALLELISM,
        },
        "server_ms": percentiles(server),
        "client_ms": percentiles(seen),
        "verify_password_in_process_ms": percentiles(verify),
    }


@contextmanager
def data_dir(path: str | None) -> Iterator[Path]:
    if path is not None:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        yield Path(tmp)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    with data_dir(args.dir) as folder, Store.open(folder, GATEWAY_ID) as store:
        seed = prepare_store(store, args.events, args.tenants)
        reader = store.reader()
        events = journal.last_seq(reader)
        tenants = reader.execute("SELECT count(*) FROM tenants").fetchone()[0]
        app = create_app(BuildingGateway(store, folder))
        app.add_middleware(ServerTiming)
        server = WebServer(app, "127.0.0.1", 0)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as police, \
                    httpx.Client(base_url=server.url, timeout=60) as head:  # fmt: skip
                login(police, "police")
                login(head, "head")
                entries = run_mix(police, "/api/v1/entries", entry_requests(store, rng),
                                  args.queries, rng)  # fmt: skip
                listing = run_mix(head, "/api/v1/tenants", tenant_requests(store, rng),
                                  args.queries, rng)  # fmt: skip
                logins = run_logins(head, args.logins)
        finally:
            server.stop()
        db_bytes = sum(f.stat().st_size for f in folder.glob("gateway.db*"))
    return {
        "events": events,
        "tenants": tenants,
        "database_mib": round(db_bytes / 2**20, 1),
        "seed": seed,
        "entries": {
            "goal_p95_server_ms": ENTRY_GOAL_P95_MS,
            "queries_per_kind": args.queries,
            **entries,
        },
        "tenant_list": {
            "goal_server_ms": TENANT_GOAL_MS,
            "requests_per_kind": args.queries,
            **listing,
        },
        "login": logins,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200, help="requests of each kind")
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--dir", default=None,
                        help="keep the store here and reuse it on later runs (default: a"
                        " temporary directory)")  # fmt: skip
    parser.add_argument("--name", default="web", help="result file name")
    args = parser.parse_args()
    started = machine()
    save(args.name, {"machine": started, **run(args)})


if __name__ == "__main__":
    main()
