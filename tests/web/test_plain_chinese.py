"""What a building head is told when something is refused: plain Chinese, never English or a
code, with what was typed kept.

Each case is a real form post through the app with one thing wrong, the way a person gets it
wrong; the error paragraph of the page that comes back is read as text.
"""

from __future__ import annotations

import csv
import html
import io
import re
import string
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway import decisions, tenant_csv
from gateway.config import load_config
from gateway.parts import door as door_part
from gateway.parts import findings
from gateway.parts.findings import finding, health_report
from gateway.parts.web import combine_health
from gateway.store import Store, TenantCreate, validation
from gateway.web.i18n import WORDS
from tests.config.support import MINIMAL, write
from tests.store.factories import id_number
from web_security import passwords
from web_security.login import LOGIN_REFUSAL_KEYS
from web_security.roles import PAGE_REFUSAL_KEYS

from .building import BuildingGateway
from .conftest import PASSWORDS
from .test_input_hygiene import new_tenant_form
from .test_pages import form_login

# Words a Chinese page may carry in Latin letters: file formats, and the X of an ID number.
ALLOWED_LATIN = {"CSV", "UTF", "GB", "Excel", "Unicode", "X", "YYYY", "MM", "DD"}
_ERROR = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


def said(page: str) -> str:
    found = _ERROR.search(page)
    assert found, page[:2000]
    return html.unescape(found.group(1)).strip()


def assert_plain_chinese(text: str) -> None:
    """Chinese, and no Latin word but a file format's; what the person typed, quoted “so”,
    is theirs to read back."""
    assert re.search(r"[\u4e00-\u9fff]", text), text
    own = re.sub(r"“[^”]*”", "", text)
    latin = set(re.findall(r"[A-Za-z_]{2,}", own)) - ALLOWED_LATIN
    assert not latin, f"English or a code on the page: {sorted(latin)} in {text!r}"


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_refusal_has_both_languages_with_the_same_blanks() -> None:
    codes = {*validation.REFUSALS, *passwords.WEAK, *tenant_csv.REFUSALS,
             "card_taken", "card_cancelled", "id_number_taken", "username_taken", "username_shape",
             "no_such_door"}  # fmt: skip
    missing = sorted(code for code in codes if f"refusal.{code}" not in WORDS)
    assert missing == []
    assert [key for key in (*LOGIN_REFUSAL_KEYS, *PAGE_REFUSAL_KEYS) if key not in WORDS] == []
    for key, (zh, en) in WORDS.items():
        assert zh.strip(), key
        assert en.strip(), key
        if key.startswith("refusal."):
            assert re.search(r"[\u4e00-\u9fff]", zh), key
            assert placeholders(zh) == placeholders(en), key


WRONG_CHECK = id_number(9)[:17] + ("0" if id_number(9)[17] != "0" else "1")

TENANT_CASES = {
    "ID number mistyped": {"id_number": WRONG_CHECK},
    "ID number too short": {"id_number": "44030519900101"},
    "ID number with a birth date that is no date": {"id_number": "440305199013011234"},
    "phone too short": {"phone": "1391234"},
    "phone from Excel": {"phone": "1.39123E+10"},
    "name like a formula": {"name": "=HYPERLINK(1)"},
    "name invisible": {"name": "\u200b\u200b"},
    "room like a formula": {"room": "+301"},
    "room empty": {"room": " "},
    "lease ends before it starts": {"valid_from": "2027-06-01", "valid_until": "2027-01-01"},
    "lease date not a date": {"valid_until": "2027-13-01"},
    "card with a letter": {"card": "12a"},
    "card too large": {"card": "99999999999"},
    "card in full-width digits": {"card": "１２３"},
    "card of another tenant": {"card": "5150"},
    "ID number of another tenant": {"id_number": id_number(51)},
}


@pytest.mark.parametrize("case", sorted(TENANT_CASES))
def test_a_refused_registration_says_why_in_plain_chinese(
    client: TestClient, store: Store, case: str
) -> None:
    store.add_tenant(TenantCreate(
        name="王芳", id_number=id_number(51), phone="13900000051", room="301",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1), cards=(5150,)))  # fmt: skip
    csrf = form_login(client, "head")
    typed = new_tenant_form(csrf, **TENANT_CASES[case])
    page = client.post("/tenants/new", data=typed)
    assert page.status_code == 422
    assert_plain_chinese(said(page.text))
    for name in ("name", "id_number", "phone", "room", "card"):  # nothing typed is lost
        assert f'value="{html.escape(typed[name].strip(), quote=True)}"' in page.text or \
            typed[name].strip() == "", name  # fmt: skip


def test_the_card_of_another_tenant_names_its_room_and_state_in_words(
    client: TestClient, store: Store
) -> None:
    store.add_tenant(TenantCreate(
        name="王芳", id_number=id_number(51), phone="13900000051", room="301",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1), cards=(5150,)))  # fmt: skip
    csrf = form_login(client, "head")
    page = client.post("/tenants/new", data=new_tenant_form(csrf, card="5150"))
    assert said(page.text) == "卡 5150 已属于另一位住户（301 房，这张卡有效）"


@pytest.mark.parametrize("new", ["qwertyuiopas", "aaaaaaaaaaaa", "short", "password1234"])
def test_a_refused_new_password_says_why_in_plain_chinese(client: TestClient, new: str) -> None:
    csrf = form_login(client, "head")
    page = client.post("/password", data={"csrf_token": csrf, "current": PASSWORDS["head"][1],
                                          "new": new, "repeat": new})  # fmt: skip
    assert page.status_code == 422
    assert_plain_chinese(said(page.text))


IMPORT_CASES = {
    "missing column": b"room,name,id_number,phone,card,valid_from\n",
    "unknown column": b"room,name,id_number,phone,card,valid_from,valid_until,notes\n",
    "a row with too few cells": b"room,name,id_number,phone,card,valid_from,valid_until\n801,A\n",
    "empty file": b"",
    "UTF-16": "room,name\n".encode("utf-16"),
}


@pytest.mark.parametrize("case", sorted(IMPORT_CASES))
def test_a_refused_import_says_why_in_plain_chinese(client: TestClient, case: str) -> None:
    csrf = form_login(client, "head")
    page = client.post("/import", data={"csrf_token": csrf},
                       files={"file": ("tenants.csv", IMPORT_CASES[case])})  # fmt: skip
    assert page.status_code == 422
    lines = re.findall(r"<li>(.*?)</li>", page.text.split('class="errors"', 1)[1], re.S)
    assert lines
    for line in lines:
        assert_plain_chinese(html.unescape(line))


def test_a_field_past_the_forms_own_limit_is_refused_in_plain_chinese(client: TestClient) -> None:
    csrf = form_login(client, "head")
    page = client.post("/tenants/new", data=new_tenant_form(csrf, card="9" * 300))
    assert page.status_code == 422
    assert said(page.text) == "卡号：不能超过 256 个字"


def reasons() -> set[str]:
    found = {value for name, value in vars(decisions).items()
             if name.isupper() and isinstance(value, str)}  # fmt: skip
    return found | set(door_part._VISITOR_CODE_REASONS.values()) | {"remote_unlock"}


ALARMS = ("door_forced", "door_held_open", "reader_tamper", "lost_card", "cancelled_card")
# Events other than entries (SPEC 6, and the camera's), as the demo's console says them.
EVENTS = ("door.forced", "door.held_open", "reader.online", "reader.offline", "reader.tamper",
          "command.executed", "command.rejected", "tenant.changed", "camera.online",
          "camera.offline")  # fmt: skip
ACTIONS = ("entries.query", "snapshot.view", "snapshot.hold", "id_number.reveal",
           "export.started", "export.finished", "export.cut", "audit.view")  # fmt: skip


def test_every_reason_alarm_and_action_has_words() -> None:
    missing = [f"reason.{r}" for r in reasons() if f"reason.{r}" not in WORDS]
    missing += [f"alarm.{a}" for a in ALARMS if f"alarm.{a}" not in WORDS]
    missing += [f"action.{a}" for a in ACTIONS if f"action.{a}" not in WORDS]
    missing += [f"event.{e}" for e in EVENTS if f"event.{e}" not in WORDS]
    assert missing == []


def cells(page: str, table: str, column: int) -> list[str]:
    body = re.split(rf'<table class="{table}[ "]', page, maxsplit=1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    found = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[column] for row in rows]
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found]


def test_reasons_alarms_and_audit_actions_are_shown_in_words(
    client: TestClient, store: Store
) -> None:
    for n, reason in enumerate(sorted(reasons())):
        kind = "access.granted" if reason in ("tenant_card", "visitor_code", "remote_unlock") \
            else "access.denied"  # fmt: skip
        store.append_event({"type": kind, "door": "main", "reason": reason, "snapshot": None,
                            "snapshot_error": "disabled",
                            "credential": {"kind": "card", "number": 1000 + n}})  # fmt: skip
    for alarm in ALARMS:
        store.append_event({"type": "door.forced", "door": "main"}, alarm=alarm)
    form_login(client, "head")
    page = client.get("/alarms").text
    for column in (1, 2):  # what happened, at which door
        for shown in cells(page, "alarms", column):
            assert_plain_chinese(shown)
    client.cookies.clear()
    form_login(client, "police")
    page = client.get("/police", params={"purpose": "案件 7", "limit": "100"}).text
    results = cells(page, "entries", 2)
    assert len(results) == len(reasons())
    for shown in results + cells(page, "entries", 1):  # result and reason; the door
        assert_plain_chinese(shown)
    export = client.get("/police/export.csv", params={"purpose": "案件 7"}).text
    header, *rows = csv.reader(io.StringIO(export.lstrip("\ufeff")))
    for shown in header[:9]:  # the last columns tie a row to the city's copy of the event
        assert_plain_chinese(shown)
    assert len(rows) == len(reasons())
    for row in rows:
        assert_plain_chinese(" ".join(row[1:4]))  # door, result, reason
    audit = client.get("/police/audit").text
    for shown in cells(audit, "audit", 4):
        assert_plain_chinese(shown)


def test_the_installers_diagnostics_say_each_finding_in_words(
    client: TestClient, gateway: BuildingGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reports = {
        "door": health_report([finding("bus_stopped", bus="rs485-1")],
                              [finding("clock_not_synced"),
                               finding("disk_low", free_mb=50, floor_mb=200)],
                              doors={"main": {"reader_online": False, "line_errors": 3}}),
        "camera": health_report([], [], camera={"online": True, "captures": {
            "stored": 7, "timeout": 1, "camera_offline": 2}}),
        "uplink": None,
        "edge": health_report([], [finding("mdns_failed", host="gw-1.local", error="[Errno 99]")]),
    }  # fmt: skip
    health = combine_health(load_config(write(tmp_path, MINIMAL)), reports, 5.0)
    assert health["problems"] == ["bus rs485-1 stopped", "uplink part not running"]
    monkeypatch.setattr(gateway, "health", lambda: health)
    form_login(client, "installer")
    page = client.get("/installer").text
    shown = [html.unescape(re.sub(r"<[^>]+>", "", line)).strip()
             for line in re.findall(r'data-testid="(?:problem|warning)">(.*?)</p>', page)]
    assert shown == ["读卡器线路 rs485-1 停止了", "uplink 部分没有运行",
                     "⚠ 时钟没有校准：记录的时间可能不对",
                     "⚠ 数据盘空间不足：只剩 50 MB（低于 200 MB 时停止抓拍，给出入记录留出空间）",
                     "⚠ 暂时无法用名称 gw-1.local 找到本机（用 IP 地址仍可打开网页）"]  # fmt: skip
    captures = re.findall(r"<li>([^<]+)</li>", page.split(WORDS["diag.camera"][0])[1])
    for line in captures:
        assert_plain_chinese(line)


def test_every_health_finding_has_both_languages_with_the_same_blanks() -> None:
    for code, (zh, en) in findings.WORDS.items():
        assert placeholders(zh) <= placeholders(en), code  # an error's English detail may stay
        assert f"health.{code}" in WORDS
