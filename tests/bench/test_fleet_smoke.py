"""The fleet benchmark's harness end to end, small: real sessions, Mosquitto and consumer.

No timing is asserted (bench/fleet.py measures); only that every event made was stored.
"""

from __future__ import annotations

from pathlib import Path

from bench.fleet import Plan, run


def test_every_event_made_is_stored_once(tmp_path: Path) -> None:
    plan = Plan(gateways=20, rate=20, peak=60, seconds=2, per_worker=10, idle_seconds=0.5,
                backlog_events=100, backlog_seconds=1)  # fmt: skip
    result = run(plan, tmp_path)
    events = result["events"]
    assert result["connect"]["connected"] == 20
    assert events["made"] > 100
    assert events["lost"] == 0
    assert events["stored"] == events["made"]
    assert events["stored_but_never_made"] == 0
    assert all(result[phase]["drained"] for phase in ("average", "peak", "backlog"))
