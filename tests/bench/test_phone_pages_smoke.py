"""The phone pages benchmark's harness end to end, small: the real app, Chromium through CDP,
every page once.

No timing is asserted (bench/phone_pages.py measures); only that every page was opened, showed
what it should and had its bytes counted. Unthrottled (the same CDP commands, with no
slowdown), so that it stays short.
"""

from __future__ import annotations

from pathlib import Path

from bench.phone_pages import Plan, run, table, targets


def test_every_page_is_measured_with_its_bytes(tmp_path: Path) -> None:
    plan = Plan(tenants=60, events=300, results=60, runs=1, warmup=0, throttle=False)
    result = run(plan, tmp_path)

    pages = result["pages"]
    assert list(pages) == [target.key for target in targets()]
    for row in pages.values():
        assert row["bytes"]["median"] > 0, row
        assert row["bytes_by_type"]["Document"]["median"] > 0, row
        assert "Stylesheet" not in row["bytes_by_type"], row  # inside the page: no round trip
        assert row["usable_ms"]["median"] > 0, row
    assert pages["tenants"]["rows_shown"] == 50  # the first page of 60
    assert pages["police_1"]["rows_shown"] == 50  # the search finds 60: 50, then 10
    assert pages["police_2"]["rows_shown"] == 10
    assert "Image" not in pages["police_camera_1"]["bytes_by_type"]  # pictures when asked for
    assert len(table(result).splitlines()) == len(pages) + 4
