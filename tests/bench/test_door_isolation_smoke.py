"""The door isolation benchmark's harness end to end, small: `gateway run`, a libosdp reader,
Mosquitto, the platform and every web load, one quiet and one loaded block.

No timing is asserted (bench/door_isolation.py measures); only that every swipe was journaled
and that each load really ran.
"""

from __future__ import annotations

from pathlib import Path

from bench.door_isolation import Plan, run


def test_every_swipe_is_journaled_while_every_load_runs(tmp_path: Path) -> None:
    plan = Plan(blocks=1, swipes=3, quiet_swipes=3, cards=20, slow=10, logins=3,
                import_rows=50, export_rows=30, backlog=200, camera=None)  # fmt: skip
    result = run(plan, tmp_path)

    journal = result["journal"]
    assert journal["swipes"] >= 6
    assert journal["lost"] == 0
    assert journal["seq_gaps"] == 0
    assert journal["swipes_refused"] == 0
    assert journal["journaled_but_not_opened"] == 0
    loads = result["loads"]["per_block"][0]
    assert loads["slow_connections"]["held_max_during_block"] == 10
    assert set(loads["failed_logins"]["statuses"]) == {"401"}
    assert loads["tenant_import"][0]["added"] == 50
    assert loads["police_export"]["rows"] == [30]
    assert loads["uplink_drain"]["backlog_drained_after_s"] is not None
