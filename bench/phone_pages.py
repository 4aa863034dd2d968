"""Pages on a phone: bytes transferred and time until usable, for the building head's and the
police officer's pages, in Chromium with a phone's CPU and network.

The real app (`create_app`) is served over a store on disk holding `--tenants` tenants and
`--events` access events over the past year (bench/web.py seeds them). Two of the tenants
are the ones the police look for: each has exactly `--results` entries (found by a search by
card), one from a building without a camera, one with a snapshot JPEG for every entry (the
synthetic camera's 1280×720 scene at the default quality 80, as the capture stores it).

Debian's Chromium (Playwright, 390×844 at 2× scale, zh-CN, Asia/Shanghai, as the project's
browser tests) logs in through the login page, once as a building head and once as a police
officer. Then every page, `--warmup` rounds uncounted and `--runs` counted, interleaved:
about:blank, and a fresh navigation with, through CDP, the cache disabled
(`Network.setCacheDisabled`), a 4× CPU slowdown (`Emulation.setCPUThrottlingRate`) and
DevTools' "Fast 3G" preset (`Network.emulateNetworkConditions`: 562.5 ms latency, 180,000 B/s
down, 84,375 B/s up). `--no-throttle` sends the same commands with no slowdown, to compare.

- Transferred bytes: the sum of `encodedDataLength` of `Network.loadingFinished` over every
  request of the navigation until the network is idle (document, CSS, images, favicon;
  response headers included, as DevTools' "transferred"; data: URLs cost nothing), by
  resource type. Nothing is scrolled (the police page shows a picture only when asked for).
  For comparison, the size of the document's body gzipped (the page is sent uncompressed).
- Times, from the navigation's start (Navigation and Resource Timing): the document's last
  byte, parsed (`domInteractive`: the main form or table is in the document), a stylesheet
  file asked for and its last byte if there is one (the pages carry theirs inside), first
  contentful paint,
  `readyState` complete (`domComplete`), the load event's end. "Usable" is the later of
  `readyState` complete and the load event's end; the goal is judged on it, by the median
  over the runs (the maximum is reported too). The page's main form or table is checked to
  be there, and its rows counted.
- Where the renderer's time went (CDP `Performance.getMetrics`, read when the load event has
  fired): main-thread busy, layout, style and script milliseconds, slowed down as measured.

Goal (the issue): each page ≤ 100 KB (taken as 100,000 bytes) and usable within 1.5 s.

The police page shows 50 entries a page, so a search with 100 results is two page loads:
its first page (entries 1-50) and the one its "more" link opens (51-100); both are measured.

Served as plain HTTP on loopback by default (uvicorn in this process, like bench/web.py). On
the LAN the page is HTTPS through nginx (gateway/web/edge.py): `--tls` serves it that way
(tests/web/served.py: nginx with a throwaway certificate in front of the app in a process of
its own). DevTools' throttling delays each request, not each packet: the TCP and TLS
handshakes are not slowed down, so `--tls` shows what TLS and nginx cost the CPUs, not the
one (TLS 1.3) or two (TLS 1.2) extra round trips a new connection takes on a real 3G link;
the preset's latency (150 ms × 3.75) is meant to cover connection set-up roughly.

    .venv/bin/python -m bench.phone_pages                   # 2,000 tenants, 5 runs a page
    .venv/bin/python -m bench.phone_pages --tls --runs 15   # docs/benchmarks.md: 15 runs
    .venv/bin/python -m bench.phone_pages --no-throttle --name phone_pages_unthrottled
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    ViewportSize,
    sync_playwright,
)

from bench._common import machine, save
from bench.bytes_per_event import _append_prepared, settle
from bench.web import USERS, access_event, prepare_store
from gateway.camera.snapshots import SnapshotStore, encode_jpeg
from gateway.camera.synthetic import Scene
from gateway.config.web import WebConfig
from gateway.store import Store, journal
from gateway.web.app import create_app
from gateway.web.server import WebServer
from tests.cloud.pki import make_pki
from tests.e2e.test_browser import CHROMIUM, log_in
from tests.store.factories import tenant
from tests.web.building import BUILDING_ZONE, BuildingGateway
from tests.web.conftest import GATEWAY_ID
from tests.web.served import free_port, serve_page

GOAL_BYTES = 100_000
GOAL_MS = 1500.0
CPU_SLOWDOWN = 4
FAST_3G = {
    "offline": False,
    "latency": 562.5,
    "downloadThroughput": 180_000,
    "uploadThroughput": 84_375,
}
NO_THROTTLE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
VIEWPORT: ViewportSize = {"width": 390, "height": 844}
PURPOSE = "刑侦 2026-0701"
WANTED_CARD = 9_000_000  # cards of the tenants the police look for, past the synthetic ones
CAMERA = (1280, 720, 80)  # the synthetic camera's frame and the capture's default quality
HOME = {"head": "/", "police": "/police"}
TIMING_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const css = performance.getEntriesByType('resource').filter(r => r.name.endsWith('.css'));
  return {document_done_ms: n.responseEnd, parsed_ms: n.domInteractive,
          stylesheet_asked_ms: css.length ? Math.min(...css.map(r => r.startTime)) : null,
          stylesheet_done_ms: css.length ? Math.max(...css.map(r => r.responseEnd)) : null,
          first_paint_ms: fcp ? fcp.startTime : null, ready_complete_ms: n.domComplete,
          load_event_ms: n.loadEventEnd};
}"""
# Main-thread time of the page's renderer (CDP Performance.getMetrics), in seconds.
MAIN_THREAD = {
    "TaskDuration": "busy",
    "LayoutDuration": "layout",
    "RecalcStyleDuration": "style",
    "ScriptDuration": "script",
}


@dataclass(frozen=True)
class Plan:
    """What one run does; the defaults are the issue's."""

    tenants: int = 2000
    events: int = 100_000
    results: int = 100  # entries of each wanted tenant
    runs: int = 5
    warmup: int = 1  # rounds of every page first, not counted
    tls: bool = False
    throttle: bool = True  # False: the same commands, with no slowdown (to compare)


@dataclass(frozen=True)
class Target:
    """One page as measured: who opens it, where, and what makes it usable."""

    key: str
    label: str
    role: str  # "head" or "police" (bench.web.USERS)
    path: str
    ready: str  # CSS selector of the page's main form or table
    rows: str | None = None  # CSS selector of the rows it shows


@dataclass
class Visit:
    """One measured navigation."""

    bytes: int
    by_type: dict[str, int]
    requests: int
    rows: int | None
    document_gzip: int  # what the document's body would be gzipped (level 6), for comparison
    times: dict[str, float | None] = field(default_factory=dict)
    main_thread: dict[str, float] = field(default_factory=dict)

    @property
    def usable_ms(self) -> float:
        return max(
            float(self.times["ready_complete_ms"] or 0), float(self.times["load_event_ms"] or 0)
        )


# ------------------------------------------------------------------------------ seeding


def seed(data_dir: Path, plan: Plan) -> dict[str, Any]:
    """The store: synthetic tenants and journal, two wanted tenants, users; seeding times."""
    with Store.open(data_dir, GATEWAY_ID) as store:
        timings = prepare_store(store, plan.events, plan.tenants - 2)
        add_wanted(store, data_dir, 0, plan.results, camera=False)
        add_wanted(store, data_dir, 1, plan.results, camera=True)
        store.acknowledge(journal.last_seq(store.reader()))
        settle(store)
    return timings


def add_wanted(store: Store, data_dir: Path, n: int, results: int, *, camera: bool) -> None:
    """Tenant n of the wanted ones, holding card WANTED_CARD + n, with `results` entries over
    the past `results` days, each with a snapshot when the building has a `camera`."""
    card = WANTED_CARD + n
    registered = store.add_tenant(tenant(5_000_000 + n, cards=(card,)))
    holder = [(card, registered.id, registered.room)]
    rng = random.Random(n)
    now = datetime.now(BUILDING_ZONE)
    events: list[dict[str, Any]] = []
    while len(events) < results:
        at = now - timedelta(days=results - len(events), minutes=rng.randrange(600))
        event = access_event(rng, holder, card + 1, at)
        if event["credential"]["number"] == card:  # not one of the unknown cards it makes up
            events.append(with_snapshot(event, data_dir, len(events)) if camera else event)
    ctx = store.ctx
    prepared = [journal.prepare_event(ctx, event) for event in events]
    store.transaction(partial(_append_prepared, ctx, prepared))


def with_snapshot(event: dict[str, Any], data_dir: Path, frame: int) -> dict[str, Any]:
    """The event with a stored snapshot, as the capture leaves it."""
    width, height, quality = CAMERA
    taken = datetime.fromisoformat(event["ts"])
    image = Scene(width, height).render(taken, frame)
    event_id = str(uuid.uuid4())
    stored = SnapshotStore(data_dir, min_free_mb=0).save(
        event_id,
        encode_jpeg(image, quality=quality, max_height=height),
        taken=taken.astimezone(UTC),
    )
    rest = {k: v for k, v in event.items() if k != "snapshot_error"}
    return {**rest, "event_id": event_id, "snapshot": stored.reference()}


def targets() -> list[Target]:
    """The pages, in the order measured; police pages 2 get their URL from page 1's link."""
    search = {"purpose": PURPOSE}
    police = "table.entries", "table.entries tbody tr"
    return [
        Target("overview", "overview /", "head", "/", "[data-testid=granted-today]"),
        Target(
            "tenants",
            "tenant list /tenants",
            "head",
            "/tenants",
            "main table",
            "main table tbody tr",
        ),
        Target(
            "register",
            "registration /tenants/new",
            "head",
            "/tenants/new",
            "main form input[name=name]",
        ),
        Target(
            "police_1",
            "police search, page 1",
            "police",
            "/police?" + urlencode({**search, "card": WANTED_CARD}),
            *police,
        ),
        Target("police_2", "police search, page 2", "police", "", *police),
        Target(
            "police_camera_1",
            "police search with snapshots, page 1",
            "police",
            "/police?" + urlencode({**search, "card": WANTED_CARD + 1}),
            *police,
        ),
        Target("police_camera_2", "police search with snapshots, page 2", "police", "", *police),
    ]


# ------------------------------------------------------------------------------ serving


@contextmanager
def served(folder: Path, tls: bool) -> Iterator[str]:
    """The page's base URL: uvicorn in this process on plain HTTP, or with `tls` nginx with
    a throwaway certificate in front of the app in a process of its own."""
    data_dir = folder / "data"
    if tls:
        pki = make_pki(folder / "pki", identities=())
        web = WebConfig(
            host="127.0.0.1",
            port=free_port(),
            tls_cert_file=pki.server.cert,
            tls_key_file=pki.server.key,
        )
        with serve_page(folder, web) as page:
            yield page.url
        return
    with Store.open(data_dir, GATEWAY_ID) as store:
        server = WebServer(create_app(BuildingGateway(store, data_dir)), "127.0.0.1", 0)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


# ---------------------------------------------------------------------------- measuring


class Phone:
    """One logged-in browser context and its page, throttled through its CDP session, which
    also counts the bytes of every request while recording."""

    def __init__(self, browser: Browser, base: str, role: str, throttle: bool) -> None:
        self.base = base
        self.context: BrowserContext = browser.new_context(
            viewport=VIEWPORT,
            device_scale_factor=2,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            ignore_https_errors=True,
        )
        self.page: Page = self.context.new_page()
        username, _, password = USERS[role]
        log_in(self.page, base, (username, password))
        self.page.wait_for_url(base + HOME[role])
        self.cdp: CDPSession = self.context.new_cdp_session(self.page)
        self.network = FAST_3G if throttle else NO_THROTTLE
        self.recording = False
        self.types: dict[str, str] = {}
        self.done: dict[str, int] = {}
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.loadingFinished", self._finished)
        for method, params in (
            ("Network.enable", {}),
            ("Performance.enable", {}),
            ("Network.setCacheDisabled", {"cacheDisabled": True}),
            ("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN if throttle else 1}),
            ("Network.emulateNetworkConditions", self.network),
        ):
            self.cdp.send(method, params)

    def _sent(self, event: dict[str, Any]) -> None:
        if self.recording and not event["request"]["url"].startswith("data:"):
            self.types[event["requestId"]] = event.get("type", "Other")

    def _finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.types:
            self.done[event["requestId"]] = int(event["encodedDataLength"])

    def visit(self, target: Target, path: str) -> Visit:
        """A fresh navigation to `path`, recorded until the network is idle."""
        self.page.goto("about:blank")
        self.types, self.done, self.recording = {}, {}, True
        response = self.page.goto(self.base + path, wait_until="load")
        busy = self.main_thread()  # as near the load event as can be
        self.page.wait_for_load_state("networkidle")
        self.recording = False
        if response is None or response.status != 200:
            raise RuntimeError(f"{path}: {response.status if response else 'no response'}")
        if self.page.locator(target.ready).count() == 0:
            raise RuntimeError(f"{path}: no {target.ready} on the page")
        by_type: dict[str, int] = {}
        for request_id, size in self.done.items():
            by_type[self.types[request_id]] = by_type.get(self.types[request_id], 0) + size
        return Visit(
            bytes=sum(self.done.values()),
            by_type=by_type,
            requests=len(self.done),
            rows=self.page.locator(target.rows).count() if target.rows else None,
            document_gzip=len(gzip.compress(response.body(), 6)),
            times=self.page.evaluate(TIMING_JS),
            main_thread=busy,
        )

    def main_thread(self) -> dict[str, float]:
        """Milliseconds the page's renderer has spent on its main thread so far, by kind."""
        metrics = self.cdp.send("Performance.getMetrics")["metrics"]
        values = {m["name"]: m["value"] for m in metrics}
        return {name: round(values[key] * 1000, 1) for key, name in MAIN_THREAD.items()}

    def link(self, path: str, selector: str) -> str:
        """Where the link `selector` of page `path` leads (opened unthrottled, not measured)."""
        self.cdp.send("Network.emulateNetworkConditions", NO_THROTTLE)
        self.page.goto(self.base + path)
        href = self.page.locator(selector).first.get_attribute("href")
        self.cdp.send("Network.emulateNetworkConditions", self.network)
        if not href:
            raise RuntimeError(f"{path}: no {selector}")
        return href


def measure(browser: Browser, base: str, pages: list[Target], plan: Plan) -> dict[str, list[Visit]]:
    """Every page `plan.runs` times after `plan.warmup` uncounted, interleaved, each by its
    role's phone."""
    phones = {role: Phone(browser, base, role, plan.throttle) for role in HOME}
    paths: dict[str, str] = {}
    for n, target in enumerate(pages):
        more = "a[href*='cursor=']"  # the "more" link of the page before
        paths[target.key] = target.path or phones[target.role].link(paths[pages[n - 1].key], more)
    visits: dict[str, list[Visit]] = {target.key: [] for target in pages}
    for round_number in range(plan.warmup + plan.runs):
        for target in pages:
            visit = phones[target.role].visit(target, paths[target.key])
            if round_number >= plan.warmup:
                visits[target.key].append(visit)
    for phone in phones.values():
        phone.context.close()
    return visits


def stats(values: list[float]) -> dict[str, float]:
    """Median and max; and min, what the machine gives when other jobs leave it alone."""
    return {
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


def summary(target: Target, visits: list[Visit]) -> dict[str, Any]:
    """Median and max of each figure over the runs, and whether the goal is met."""
    times = {name: stats([float(v.times[name] or 0) for v in visits]) for name in visits[0].times}
    usable = stats([v.usable_ms for v in visits])
    size = stats([float(v.bytes) for v in visits])
    return {
        "page": target.label,
        "path": target.path or "(the 'more' link of the page before)",
        "rows_shown": visits[-1].rows,
        "bytes": size,
        "usable_ms": usable,
        **times,
        "main_thread_ms": {
            name: stats([v.main_thread[name] for v in visits]) for name in MAIN_THREAD.values()
        },
        "requests": stats([float(v.requests) for v in visits]),
        "bytes_by_type": {
            kind: stats([float(v.by_type.get(kind, 0)) for v in visits])
            for kind in sorted({k for v in visits for k in v.by_type})
        },
        "document_gzip_bytes": visits[-1].document_gzip,
        "goal_met_median": size["median"] <= GOAL_BYTES and usable["median"] <= GOAL_MS,
        "goal_met_max": size["max"] <= GOAL_BYTES and usable["max"] <= GOAL_MS,
    }


def run(plan: Plan, folder: Path) -> dict[str, Any]:
    """Seed, serve, measure; the result (as saved)."""
    seeded = seed(folder / "data", plan)
    pages = targets()
    with served(folder, plan.tls) as base, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            visits = measure(browser, base, pages, plan)
        finally:
            browser.close()
    return {
        "plan": asdict(plan),
        "served": "HTTPS through nginx (TLS)" if plan.tls else "plain HTTP on loopback (no TLS)",
        "phone": {
            "viewport": VIEWPORT,
            "cpu_slowdown": CPU_SLOWDOWN if plan.throttle else 1,
            "network": FAST_3G if plan.throttle else NO_THROTTLE,
            "cache": "disabled",
        },
        "goal": {"bytes": GOAL_BYTES, "usable_ms": GOAL_MS},
        "seed": seeded,
        "pages": {t.key: summary(t, visits[t.key]) for t in pages},
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a text table, one row a page (medians and maxima over the runs)."""
    lines = [
        f"{'page':38} {'rows':>4} {'bytes med/max':>15} {'usable ms med/max':>17}"
        f" {'doc':>5} {'css':>5} {'FCP':>5} {'busy':>5} {'doc gz':>6}  goal",
        "-" * 119,
    ]
    for row in result["pages"].values():
        lines.append(table_row(row))
    phone = result["phone"]
    lines += [
        f"served: {result['served']}; CPU {phone['cpu_slowdown']}× slower, network"
        f" {phone['network']}",
        f"goal: ≤ {GOAL_BYTES} B and usable ≤ {GOAL_MS:.0f} ms, judged on the median. usable:"
        " the later of readyState complete and the load event's end; doc, css: the document's"
        " and the stylesheet's last byte; FCP: first contentful paint; busy: the renderer's"
        " main thread; all medians in ms. doc gz: the document's body gzipped, not what was sent",
    ]
    return "\n".join(lines)


def table_row(row: dict[str, Any]) -> str:
    def median(key: str) -> float:
        return float(row[key]["median"])

    goal = "met" if row["goal_met_median"] else "MISSED"
    if row["goal_met_median"] and not row["goal_met_max"]:
        goal += " (max missed)"
    return (
        f"{row['page']:38} {row['rows_shown'] or '-':>4}"
        f" {median('bytes'):>7.0f}/{row['bytes']['max']:<7.0f}"
        f" {median('usable_ms'):>7.0f}/{row['usable_ms']['max']:<9.0f}"
        f" {median('document_done_ms'):>5.0f} {median('stylesheet_done_ms'):>5.0f}"
        f" {median('first_paint_ms'):>5.0f} {row['main_thread_ms']['busy']['median']:>5.0f}"
        f" {row['document_gzip_bytes']:>6}  {goal}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=Plan.tenants)
    parser.add_argument("--events", type=int, default=Plan.events)
    parser.add_argument(
        "--results",
        type=int,
        default=Plan.results,
        help="entries each wanted tenant has (what the police search finds)",
    )
    parser.add_argument("--runs", type=int, default=Plan.runs, help="navigations of each page")
    parser.add_argument(
        "--warmup", type=int, default=Plan.warmup, help="rounds of every page first, not counted"
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS through nginx")
    parser.add_argument(
        "--no-throttle",
        action="store_true",
        help="no CPU slowdown, no network emulation (to compare)",
    )
    parser.add_argument(
        "--name", default=None, help="result file name (default: phone_pages, or phone_pages_tls)"
    )
    args = parser.parse_args()
    plan = Plan(
        args.tenants,
        args.events,
        args.results,
        args.runs,
        args.warmup,
        args.tls,
        not args.no_throttle,
    )
    started = machine()
    with tempfile.TemporaryDirectory(prefix="bench-phone-") as tmp:
        result = {"machine": started, **run(plan, Path(tmp))}
    result["load_1min_at_end"] = round(os.getloadavg()[0], 2)  # other jobs slow the CPU part
    save(args.name or ("phone_pages_tls" if plan.tls else "phone_pages"), result)
    print(table(result))


if __name__ == "__main__":
    main()
