"""The web page in a real browser: Debian's Chromium driven by Playwright, against the whole
gateway (a libosdp reader on a pty, the store, the synthetic camera through FFmpeg).

A building head logs in on a phone-sized screen, registers a tenant, enrolls a card by
presenting it at the reader, the card opens the door, and a police officer finds that entry
with its snapshot. With UPDATE_SCREENSHOTS=1 the screenshots are written to docs/screenshots/.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from gateway.camera.synthetic import SyntheticCamera
from gateway.service import Gateway
from tests.e2e.building import Building, building
from tests.store.factories import id_number

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HEAD = ("wang-lou", "Lou-zhang 2026 kai men")
POLICE = ("li-police", "Min-jing an jian 4711")
INSTALLER = ("zhao-install", "An-zhuang shi fu 0420")
NEW_CARD = 7_700_123


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Building, Gateway]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup --test installs Debian's chromium")
    zone = ZoneInfo("Asia/Shanghai")  # the building's (tests/e2e/building.py): one clock
    with building(tmp_path) as b, SyntheticCamera(width=640, height=360, fps=5,
                                                  zone=zone) as camera:  # fmt: skip
        with b.config_path.open("a") as config:
            config.write(f'\n[camera]\nsource = "{camera.url}"\n')
        with b.open_store() as store:
            store.add_user(HEAD[0], "building_head", HEAD[1])
            store.add_user(POLICE[0], "police", POLICE[1])
            store.add_user(INSTALLER[0], "installer", INSTALLER[1])
        gateway = Gateway(b.config)
        gateway.start()
        ticking = threading.Event()

        def tick() -> None:  # as `gateway run` does: the doors' timers, the parts' health
            while not ticking.wait(0.2):
                gateway.tick()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                all(d.online for d in gateway.doors.values())
                and gateway.camera is not None and gateway.camera.health()["online"]
            ):
                time.sleep(0.1)
            yield b, gateway
        finally:
            ticking.set()
            ticker.join()
            gateway.stop()


def shoot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def given(url: str) -> set[str]:
    """The search filters an address carries (those with a value)."""
    return set(parse_qs(urlsplit(url).query))


def log_in(page: Any, base: str, who: tuple[str, str]) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("main button[type=submit]")


def test_register_enroll_open_and_find_the_entry_with_its_picture(
    site: tuple[Building, Gateway], tmp_path: Path
) -> None:
    b, gateway = site
    assert gateway.url is not None
    base = gateway.url
    shots = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    reader = b.readers["main"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
        ])  # fmt: skip
        context = browser.new_context(viewport={"width": 390, "height": 844},
                                      device_scale_factor=2, locale="zh-CN")  # fmt: skip
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        log_in(page, base, HEAD)
        page.wait_for_url(f"{base}/")
        assert "信息采集率" in page.content()
        shoot(page, shots, "1-dashboard")

        page.goto(f"{base}/tenants/new")
        page.fill("input[name=name]", "赵敏")
        page.fill("input[name=id_number]", id_number(42))
        page.fill("input[name=phone]", "13712345678")
        page.fill("input[name=room]", "702")
        shoot(page, shots, "2-register")
        page.click("main button[type=submit]")
        page.wait_for_url("**/tenants/*?saved=1")
        assert "赵敏" in page.content()

        # Enroll: the page waits for the next card the reader does not know.
        page.click("#enroll")
        page.wait_for_selector("#enroll:disabled")
        reader.present_card(NEW_CARD)
        playwright_api.expect(page.locator("#card-number")).to_have_value(str(NEW_CARD),
                                                                          timeout=15000)
        shoot(page, shots, "3-enroll")
        page.click("#card-form button[type=submit]")
        page.wait_for_url("**/tenants/*?saved=1")
        assert str(NEW_CARD) in page.content()

        # A refused form comes back saying why, with what was typed still in it.
        page.fill("input[name=phone]", "13712345679")
        page.fill("input[name=valid_from]", "2030-01-01")
        page.click("input[name=valid_from] >> xpath=ancestor::form//button[@type='submit']")
        page.wait_for_selector("p.error")
        assert page.input_value("input[name=phone]") == "13712345679"
        assert page.input_value("input[name=valid_from]") == "2030-01-01"
        shoot(page, shots, "3b-refused")

        # The enrolled card now opens the door.
        while reader.wait_for_output(timeout=0.2) is not None:
            pass  # the refusal's LED and buzzer commands from the unknown read
        reader.present_card(NEW_CARD)
        assert reader.wait_for_output(timeout=10) is not None

        # The import page says which columns to fill, with a template to start from.
        tenant_page = page.url.split("?")[0]
        page.goto(f"{base}/import")
        assert "身份证号" in page.inner_text("dl.columns")
        shoot(page, shots, "3d-import")

        # Reporting the card lost asks first; cancelling changes nothing.
        page.goto(tenant_page)
        page.click("form.inline button.danger")
        page.wait_for_selector("[data-testid=confirm-question]")
        assert str(NEW_CARD) in page.inner_text("[data-testid=confirm-question]")
        shoot(page, shots, "3c-confirm")
        page.click("main a.button")
        page.wait_for_url("**/tenants/*")
        assert "挂失" in page.content()

        # Reported lost for real, the card presented again is an alarm: whose card, which door,
        # and the picture of whoever holds it now.
        page.click("form.inline button.danger")
        page.click("main form button.danger")
        page.wait_for_url("**/tenants/*?saved=1")
        assert "已挂失" in page.content()
        reader.present_card(NEW_CARD)
        page.goto(f"{base}/alarms")
        deadline = time.monotonic() + 15
        while not page.locator("table.alarms img.thumb").count() and time.monotonic() < deadline:
            time.sleep(0.3)
            page.reload()
        alarm = page.locator("table.alarms tbody tr").first
        alarm.scroll_into_view_if_needed()
        assert "有人刷了已挂失的卡" in alarm.inner_text()
        assert f"卡号 {NEW_CARD} · 赵敏（702 房）" in alarm.inner_text()
        assert "正门" in alarm.inner_text()
        shoot(page, shots, "5-alarms")

        page.click("header button[type=submit]")  # log out
        page.wait_for_url(f"{base}/login")
        log_in(page, base, POLICE)
        page.wait_for_url(f"{base}/police")
        page.fill("input[name=purpose]", "案件 2026-0701")
        page.fill("input[name=room]", "702")
        page.click("form.search button[type=submit]")
        page.wait_for_selector("table.entries a.picture")
        row = page.locator("table.entries tbody tr").first
        assert "赵敏" in (row.text_content() or "")  # (rows are laid out when scrolled to)
        shoot(page, shots, "4-police")
        # The picture opens when asked for: the real JPEG, served after its sha256 was checked.
        # (Polled from here: wait_for_function evaluates a string, which the CSP forbids.)
        with context.expect_page() as opened:
            row.locator("a.picture").click()
        picture = opened.value
        width = 0
        deadline = time.monotonic() + 10
        while width == 0 and time.monotonic() < deadline:
            width = picture.locator("img").first.evaluate("img => img.naturalWidth")
            time.sleep(0.1)
        assert width == 640
        picture.close()
        # The row's buttons post the page's one shared form, each to its own action, and come
        # back to the same search.
        searched = page.url
        row.locator("button", has_text="保留此抓拍").click()
        page.wait_for_selector("p.ok[role=status]")
        assert "已保留这张抓拍" in page.inner_text("p.ok[role=status]")
        assert page.input_value("input[name=room]") == "702"
        assert given(page.url) - {"held"} == given(searched) == {"purpose", "room"}
        page.locator("table.entries tbody tr").first.locator(
            "button", has_text="显示完整身份证号").click()
        page.wait_for_selector("[data-testid=full-id-number]")
        assert page.inner_text("[data-testid=full-id-number]") == id_number(42)
        page.goto(f"{base}/police/audit")
        assert "查询出入记录" in page.inner_text("table.audit")
        shoot(page, shots, "6-audit")

        page.click("header button[type=submit]")  # log out
        page.wait_for_url(f"{base}/login")
        log_in(page, base, INSTALLER)
        page.wait_for_url(f"{base}/installer")
        assert "读卡器" in page.content()
        shoot(page, shots, "7-diagnostics")
        browser.close()
    # No CSP violation or script error in the console; Chromium also logs the refused form's
    # 422 (the page it answered with is the one shot above).
    assert [e for e in errors if "status of 422" not in e] == []
    store = gateway.store
    assert store is not None
    audited = [(r.username, r.action) for r in store.audit_page()]
    assert (POLICE[0], "entries.query") in audited
    assert (POLICE[0], "snapshot.view") in audited  # the picture opened
    assert (POLICE[0], "snapshot.hold") in audited
    assert (POLICE[0], "id_number.reveal") in audited
    assert (HEAD[0], "snapshot.view") in audited  # the alarm's picture
