"""The figures of bench.door_isolation: swipes and blocks as measured, and what they add up to.

Kept apart from the run itself so the report can be read (and changed) without the machinery
that starts processes: every function here is plain arithmetic over what a run recorded.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._common import percentiles

# The edge part's own process (nginx runs as its children, not counted here).
PARTS = ("door", "camera", "uplink", "web", "edge")
DECIDE_GOAL_MS = 2000.0
RATIO_GOAL = 1.2
SWIPE_TIMEOUT_S = 30.0  # a swipe is waited for this long (beyond 2 s it counts as undecided)


@dataclass
class Swipe:
    at: float  # monotonic, card presented
    card: int
    ms: float | None  # None: no relay command within SWIPE_TIMEOUT_S


@dataclass
class Block:
    kind: str
    index: int
    started: float = 0.0
    ended: float = 0.0
    swipes: list[Swipe] = field(default_factory=list)
    pids: dict[str, int | None] = field(default_factory=dict)
    pids_after: dict[str, int | None] = field(default_factory=dict)
    peak_kib: dict[str, int] = field(default_factory=dict)  # VmHWM during the block
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core, per part
    disk_mb_s: dict[str, float] = field(default_factory=dict)  # written to storage, per part
    fds: dict[str, int] = field(default_factory=dict)  # open at the block's end
    late_outputs: int = 0
    loads: dict[str, Any] = field(default_factory=dict)
    load_avg: float = 0.0


def log_summary(path: Path) -> dict[str, int]:
    """The gateway's ERROR lines, counted by what they say (numbers left out)."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for line in log:
            if " ERROR " not in line:
                continue
            text = re.sub(r"[0-9]+", "N", line.split(" ERROR ", 1)[1].strip())[:120]
            counts[text] = counts.get(text, 0) + 1
    return counts


_ACCESS = re.compile(
    r"(\S+ \S+) \w+ gateway\.door: (?:slow )?access at door \S+: decided in ([0-9.]+) ms,"
    r" journaled in ([0-9.]+) ms, relay in ([0-9.]+) ms"
)


def door_steps(path: Path, blocks: list[Block], wall_offset: float) -> dict[str, Any]:
    """The door part's own steps per block kind, from the line it logs for every access:
    deciding, the journal commit, queuing the relay command, and the three together.
    `wall_offset`: time.time() - time.monotonic() (the log's clock against the blocks')."""
    rows: list[tuple[float, float, float, float]] = []
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for line in log:
            if (found := _ACCESS.match(line)) is None:
                continue
            wall = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            steps = float(found[2]), float(found[3]), float(found[4])
            rows.append((wall - wall_offset, *steps))
    out: dict[str, Any] = {}
    for kind in ("quiet", "loaded"):
        spans = [(b.started, b.ended) for b in blocks if b.kind == kind]
        mine = [r for r in rows if any(start <= r[0] <= end for start, end in spans)]
        out[kind] = {
            "decide_ms": percentiles([r[1] for r in mine]),
            "commit_ms": percentiles([r[2] for r in mine]),
            "relay_ms": percentiles([r[3] for r in mine]),
            "all_three_ms": percentiles([r[1] + r[2] + r[3] for r in mine]),
        }
    return out


# A swipe that overlapped no write-lock hold longer than this did not wait for the lock.
LOCK_WAIT_MS = 20.0


class Holds:
    """The probe's write-lock holds, (first refused, ms), for overlap queries."""

    def __init__(self, held: list[tuple[float, float]]) -> None:
        self.held = sorted(held)
        self.starts = [at for at, _ in self.held]
        self.longest_s = max((ms for _, ms in self.held), default=0.0) / 1000

    def longest_in(self, start: float, end: float) -> float:
        """The longest hold that overlaps [start, end], in ms (0 if none)."""
        first = bisect.bisect_left(self.starts, start - self.longest_s)
        last = bisect.bisect_right(self.starts, end)
        return max((ms for at, ms in self.held[first:last] if at + ms / 1000 >= start),
                   default=0.0)  # fmt: skip


def swipe_ms(swipe: Swipe) -> float:
    return swipe.ms if swipe.ms is not None else SWIPE_TIMEOUT_S * 1000


def report(
    plan: dict[str, Any],
    seeded: dict[str, Any],
    blocks: list[Block],
    probe: dict[str, Any],
    check: dict[str, Any],
    gateway_code: int | None,
    events: list[tuple[float, str]],
) -> dict[str, Any]:
    held = [(float(at), float(ms)) for at, ms in probe.get("held", [])]
    holds = Holds(held)
    kinds: dict[str, Any] = {}
    for kind in ("quiet", "loaded"):
        mine = [b for b in blocks if b.kind == kind]
        swipes = [s for b in mine for s in b.swipes]
        ms = [s.ms if s.ms is not None else SWIPE_TIMEOUT_S * 1000 for s in swipes]
        locks = [h for h in held for b in mine if b.started <= h[0] <= b.ended]
        waited = [(swipe_ms(s), holds.longest_in(s.at, s.at + swipe_ms(s) / 1000)) for s in swipes]
        slow = sorted(waited, reverse=True)[:10]
        kinds[kind] = {
            "blocks": len(mine),
            "card_to_relay_ms": percentiles(ms),
            # The tail split by cause: swipes during a write-lock hold against the others
            # (whose tail is the CPU: the door part waiting to run).
            "card_to_relay_ms_no_lock_wait": percentiles(
                [m for m, lock in waited if lock <= LOCK_WAIT_MS]
            ),
            "card_to_relay_ms_during_a_lock_hold": percentiles(
                [m for m, lock in waited if lock > LOCK_WAIT_MS]
            ),
            "undecided_within_2s": sum(1 for v in ms if v > DECIDE_GOAL_MS),
            "never_opened": sum(1 for s in swipes if s.ms is None),
            "late_outputs": sum(b.late_outputs for b in mine),
            "door_peak_rss_mib": [round(b.peak_kib.get("door", 0) / 1024, 1) for b in mine],
            "door_peak_rss_mib_max": round(
                max((b.peak_kib.get("door", 0) for b in mine), default=0) / 1024, 1
            ),
            "door_cpu_percent_of_one_core": [b.cpu_percent.get("door") for b in mine],
            "door_restarted_in_blocks": [
                b.index for b in mine if b.pids.get("door") != b.pids_after.get("door")
            ],
            "parts_cpu_percent_of_one_core_mean": {
                part: round(sum(b.cpu_percent.get(part, 0.0) for b in mine) / max(len(mine), 1), 1)
                for part in PARTS
            },
            "parts_disk_write_mb_s_mean": {
                part: round(sum(b.disk_mb_s.get(part, 0.0) for b in mine) / max(len(mine), 1), 2)
                for part in PARTS
            },
            "parts_open_fds_max": {
                part: max((b.fds.get(part, 0) for b in mine), default=0) for part in PARTS
            },
            "parts_peak_rss_mib": {
                part: round(max((b.peak_kib.get(part, 0) for b in mine), default=0) / 1024, 1)
                for part in PARTS
            },
            "write_lock_holds": {
                "count": len(locks),
                "longest_ms": max((h[1] for h in locks), default=0.0),
                "over_100ms": sum(1 for h in locks if h[1] > 100),
                "over_1s": sum(1 for h in locks if h[1] > 1000),
                "held_seconds": round(sum(h[1] for h in locks) / 1000, 2),
            },
            "slowest_swipes_ms_with_longest_overlapping_lock_hold_ms": [
                [round(a, 1), round(b, 1)] for a, b in slow
            ],
            "load_avg_1min_at_block_end": [b.load_avg for b in mine],
        }
    quiet, loaded = kinds["quiet"]["card_to_relay_ms"], kinds["loaded"]["card_to_relay_ms"]
    ratio = (
        {k: round(loaded[k] / quiet[k], 3) for k in ("p50", "p95", "p99", "max")}
        if quiet and loaded
        else {}
    )
    restarts = {
        part: sorted(
            {pid for b in blocks for pid in (b.pids.get(part), b.pids_after.get(part)) if pid}
        )
        for part in PARTS
    }
    return {
        "plan": plan,
        "seed": seeded,
        "summary": {
            "quiet": kinds["quiet"],
            "loaded": kinds["loaded"],
            "ratio_loaded_to_quiet": ratio,
            "goals": {
                "p99_ratio_at_most": RATIO_GOAL,
                "p99_ratio": ratio.get("p99"),
                "undecided_within_2s": kinds["quiet"]["undecided_within_2s"]
                + kinds["loaded"]["undecided_within_2s"],
                "events_lost": check["lost"],
                "valid_cards_refused": check["swipes_refused"],
                "seq_gaps": check["seq_gaps"],
            },
        },
        "loads": summarize_loads(blocks, held),
        "journal": check,
        "part_pids_seen": restarts,
        "gateway_exit_code": gateway_code,
        "blocks": [block_json(b) for b in blocks],
        "timeline": events,
    }


def summarize_loads(blocks: list[Block], held: list[tuple[float, float]]) -> dict[str, Any]:
    """What each load achieved in each loaded block, and the write-lock holds of each import."""
    out: list[dict[str, Any]] = []
    for b in (b for b in blocks if b.kind == "loaded"):
        loads = b.loads
        slow = loads.get("slow", {})
        in_block = [n for t, n in slow.get("samples", []) if b.started <= t <= b.ended]
        waves = loads.get("logins", {}).get("waves", [])
        statuses: dict[str, int] = {}
        for wave in waves:
            for status, n in wave["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        wave_s = [w["end"] - w["start"] for w in waves]
        imports = [
            {
                **{
                    k: i.get(k)
                    for k in ("status", "rows", "seconds", "rows_per_second", "added", "updated")
                },
                "longest_write_lock_hold_ms": max(
                    (ms for at, ms in held if i["start"] <= at <= i["end"]), default=0.0
                ),
            }
            for i in loads.get("import", {}).get("imports", [])
        ]
        exports = loads.get("export", {}).get("exports", [])
        done = [e for e in exports if e["complete"] and e["status"] == 200]
        refused: dict[str, int] = {}
        for e in exports:
            if e["status"] != 200:
                refused[str(e["status"])] = refused.get(str(e["status"]), 0) + 1
        export_s = [e["seconds"] for e in done]
        export_p50 = percentiles(export_s).get("p50", 0.0)
        out.append(
            {
                "block": b.index,
                "swipes": len(b.swipes),
                "seconds": round(b.ended - b.started, 1),
                "slow_connections": {
                    "target": slow.get("target"),
                    "held_min_during_block": min(in_block, default=0),
                    "held_max_during_block": max(in_block, default=0),
                    "counts": slow.get("counts"),
                },
                "failed_logins": {
                    "waves": len(waves),
                    "answered": sum(statuses.values()),
                    "statuses": statuses,
                    "wave_seconds_p50_max": [
                        round(percentiles(wave_s).get("p50", 0.0), 1),
                        round(max(wave_s, default=0.0), 1),
                    ],
                },
                "tenant_import": imports,
                "police_export": {
                    "complete": len(done),
                    "cut_at_block_end": sum(1 for e in exports if not e["complete"]),
                    "refused": refused,
                    "rows": sorted({e["rows"] for e in done}),
                    "seconds_p50_max": [round(export_p50, 2), round(max(export_s, default=0.0), 2)],
                    "rows_per_second_p50": round(done[0]["rows"] / export_p50)
                    if done and export_p50 > 0
                    else None,
                },
                "uplink_drain": loads.get("drain"),
                "camera_online_after_s": loads.get("camera_online_after_s"),
                "quiesce_after_s": loads.get("quiesce_after_s"),
                "errors": {
                    k: v["error"]
                    for k, v in loads.items()
                    if isinstance(v, dict) and v.get("error")
                },
            }
        )
    return {"per_block": out}


def block_json(b: Block) -> dict[str, Any]:
    return {
        "kind": b.kind,
        "index": b.index,
        "seconds": round(b.ended - b.started, 1),
        "swipes": len(b.swipes),
        "card_to_relay_ms": percentiles([s.ms for s in b.swipes if s.ms is not None]),
        "never_opened": sum(1 for s in b.swipes if s.ms is None),
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in b.peak_kib.items()},
        "cpu_percent": b.cpu_percent,
        "disk_mb_s": b.disk_mb_s,
        "fds": b.fds,
        "pids": b.pids,
        "pids_after": b.pids_after,
        "started": round(b.started, 3),
        "ended": round(b.ended, 3),
        "ms": [s.ms for s in b.swipes],
    }
