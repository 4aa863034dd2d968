"""The HTML pages: Chinese first, forms with CSRF, masking, audited police actions, setup."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.clock import shown
from gateway.store import Store, TenantCreate
from gateway.web import pages
from gateway.web.app import create_app
from gateway.web.i18n import WORDS
from tests.store.factories import id_number

from .building import BUILDING_ZONE, BuildingGateway
from .conftest import PASSWORDS

ID = id_number(3)
TEMPLATES = Path(pages.__file__).parent / "templates"


def form_login(client: TestClient, username: str) -> str:
    """Log in through the login form; returns the CSRF token the pages carry."""
    response = client.post("/login", data={"username": username,
                                           "password": PASSWORDS[username][1]},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def test_the_login_page_is_chinese_first_with_an_english_switch(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'lang="zh-CN"' in page.text
    assert "登录" in page.text
    switched = client.get("/lang/en?back=/login")
    assert switched.status_code == 200
    assert "Log in" in switched.text
    assert 'lang="en"' in switched.text


def test_pages_send_people_to_login_and_refuse_other_roles(client: TestClient) -> None:
    response = client.get("/tenants", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    form_login(client, "police")
    assert client.get("/tenants").status_code == 403
    assert "此页面不属于您的角色" in client.get("/tenants").text


def test_a_wrong_password_shows_why_and_the_sixth_try_is_refused(client: TestClient) -> None:
    for _ in range(5):
        page = client.post("/login", data={"username": "head", "password": "not it 123"})
        assert page.status_code == 401
        assert "用户名或密码错误" in page.text
    page = client.post("/login", data={"username": "head", "password": PASSWORDS["head"][1]})
    assert page.status_code == 429


def test_a_building_head_registers_a_tenant_who_stays_masked(client: TestClient) -> None:
    csrf = form_login(client, "head")
    form = {"csrf_token": csrf, "name": "李娜", "id_number": ID, "phone": "13912345678",
            "room": "502", "valid_from": "2026-01-01", "valid_until": "2027-01-01",
            "card": "3000001"}  # fmt: skip
    without = client.post("/tenants/new", data={**form, "csrf_token": "forged"})
    assert without.status_code == 403
    created = client.post("/tenants/new", data=form, follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"])
    assert "李娜" in page.text
    assert ID not in page.text
    assert ID[:4] + "**********" + ID[-4:] in page.text
    assert "13912345678" not in page.text
    listing = client.get("/tenants", params={"room": "502"})
    assert "李娜" in listing.text
    export = client.get("/tenants.csv")
    assert export.text.startswith("\ufeff房间,姓名")  # the import's own Chinese header
    assert ID not in export.text
    assert "3000001" in export.text


def test_police_search_is_audited_and_revealing_an_id_number_too(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    client.post("/tenants/new", data={
        "csrf_token": csrf, "name": "王芳", "id_number": ID, "phone": "13912345678",
        "room": "601", "valid_from": "2026-01-01", "valid_until": "2027-01-01", "card": "4242",
    })  # fmt: skip
    [tenant] = store.search_tenants(room="601")
    store.append_event({
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 4242},
        "tenant_id": tenant.id, "room": "601", "reason": "tenant_card", "snapshot": None,
        "snapshot_error": "camera_offline",
    })  # fmt: skip
    client.cookies.clear()
    csrf = form_login(client, "police")
    assert store.audit_page() == []  # opening the page is not a query
    page = client.get("/police", params={"purpose": "案件 2026-0099", "room": "601"})
    assert "王芳" in page.text
    assert ID not in page.text
    [row] = store.audit_page()
    assert (row.action, row.purpose, row.records) == ("entries.query", "案件 2026-0099", 1)
    revealed = client.post(f"/police/reveal/{tenant.id}",
                           data={"csrf_token": csrf, "purpose": "案件 2026-0099"})  # fmt: skip
    assert ID in revealed.text
    assert store.audit_page()[0].action == "id_number.reveal"
    export = client.get("/police/export.csv", params={"purpose": "案件 2026-0099"})
    assert "4242" in export.text
    finished, started = store.audit_page()[:2]
    assert (started.action, started.export_state) == ("export.started", "finished")
    assert (finished.action, finished.params, finished.records) == (
        "export.finished",
        {"start": started.seq},
        1,
    )
    assert store.verify_audit().ok


def test_the_setup_code_creates_the_first_account_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "fresh", "gw-test-0002") as store:
        app = create_app(BuildingGateway(store, tmp_path / "fresh"))
        code = app.state.web.setup_code.issue()
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert "/setup" in client.get("/login").text
            wrong = client.post(
                "/setup",
                data={
                    "code": "0000-0000-0000",
                    "username": "lou-zhang",
                    "password": "A good pass phrase 77",
                },
            )
            assert wrong.status_code == 403
            weak = client.post("/setup", data={"code": code, "username": "lou-zhang",
                                               "password": "123"})  # fmt: skip
            assert weak.status_code == 422  # the code is not spent on a weak password
            made = client.post("/setup", data={"code": code, "username": "lou-zhang",
                                               "password": "A good pass phrase 77"},
                               follow_redirects=False)  # fmt: skip
            assert made.status_code == 303
            assert store.get_user("lou-zhang").role == "building_head"
            again = client.post(
                "/setup",
                data={"code": code, "username": "second", "password": "Another pass phrase 78"},
            )
            assert again.status_code == 403
            assert "/setup" not in client.get("/login").text


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_have_no_inline_script_or_style_and_every_word_is_translated(
    template: str,
) -> None:
    text = (TEMPLATES / template).read_text()
    assert "style=" not in text
    assert not re.search(r"<script(?![^>]*\bsrc=)", text)
    assert not re.search(r"\bon[a-z]+=", text)  # no inline event handlers
    for key in re.findall(r"t\('([a-z_.]+)'\)", text):
        assert key in WORDS, key


def test_a_csv_import_reports_bad_rows_by_line_and_imports_nothing(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    header = "room,name,id_number,phone,card,valid_from,valid_until\n"
    good = f"801,陈静,{id_number(11)},13800000011,5001,2026-01-01,2027-01-01\n"
    bad = f"802,刘洋,{id_number(12)},13800000012,5002,2026-01-01,not-a-date\n"
    rejected = client.post(
        "/import",
        data={"csrf_token": csrf},
        files={"file": ("tenants.csv", (header + good + bad).encode())},
    )
    assert rejected.status_code == 422
    assert "第 3 行 · 租期结束" in rejected.text  # the bad row's line, and its column, in words
    assert store.search_tenants(room="801") == []  # all or nothing
    accepted = client.post(
        "/import",
        data={"csrf_token": csrf},
        files={"file": ("tenants.csv", (header + good).encode())},
    )
    assert accepted.status_code == 200
    assert [t.name for t in store.search_tenants(room="801")] == ["陈静"]


def test_overview_alarms_and_visitor_codes_for_the_building_head(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    client.post("/tenants/new", data={
        "csrf_token": csrf, "name": "周杰", "id_number": id_number(21), "phone": "13900000021",
        "room": "901", "valid_from": "2026-01-01", "valid_until": "2099-01-01", "card": "9101",
    })  # fmt: skip
    store.append_event({
        "type": "access.denied", "door": "main", "credential": {"kind": "card", "number": 66},
        "reason": "lost_card", "snapshot": None, "snapshot_error": "disabled",
    }, alarm="lost_card")  # fmt: skip
    overview = client.get("/")
    assert "100%" in overview.text  # one active tenant, complete (card, lease current)
    assert 'data-testid="granted-today">0<' in overview.text
    assert "有人刷了已挂失的卡" in overview.text  # the alarm, in words
    [alarm] = store.list_alarms()
    assert client.post(f"/alarms/{alarm.id}/ack", data={"csrf_token": csrf}).status_code == 200
    assert store.list_alarms() == []
    assert store.list_alarms(open_only=False)[0].acknowledged_by == "head"
    issued = client.post("/visitors", data={"csrf_token": csrf, "hours": "2", "uses": "1",
                                            "room": "901"})  # fmt: skip
    code = re.search(r'data-testid="visitor-code">(\d+)<', issued.text)
    assert code is not None
    assert store.use_visitor_code(code.group(1), "main").ok


def test_the_installer_sees_the_devices_and_no_personal_data(
    client: TestClient, store: Store
) -> None:
    store.add_tenant(TenantCreate(name="吴磊", id_number=id_number(31), phone="13900000031",
                                  room="1001", valid_from=date(2026, 1, 1),
                                  valid_until=date(2027, 1, 1), cards=(31,)))  # fmt: skip
    form_login(client, "installer")
    page = client.get("/installer")
    assert page.status_code == 200
    assert "正门" in page.text
    assert "一切正常" in page.text
    assert "吴磊" not in page.text
    assert "1001" not in page.text
    assert client.get("/tenants").status_code == 403
    assert client.get("/police").status_code == 403


def test_a_one_time_password_must_be_replaced_before_anything_else(
    client: TestClient, store: Store
) -> None:
    store.add_user("new-head", "building_head", "Handed over 2026 once", must_change=True)
    refused = client.post(
        "/api/v1/login", json={"username": "new-head", "password": "Handed over 2026 once"}
    )
    assert refused.status_code == 403
    login = client.post("/login", data={"username": "new-head",
                                        "password": "Handed over 2026 once"},
                        follow_redirects=False)  # fmt: skip
    assert login.headers["location"] == "/password"
    assert client.get("/tenants", follow_redirects=False).headers["location"] == "/password"
    # Nor does the API take that session's cookie for anything.
    assert client.get("/api/v1/tenants").status_code == 403
    page = client.get("/password")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {
        "csrf_token": csrf.group(1),
        "current": "Handed over 2026 once",
        "new": "My own phrase 4 the door",
        "repeat": "My own phrase 4 the door",
    }
    assert client.post("/password", data={**form, "repeat": "something else 1"}).status_code == 422
    assert client.post("/password", data={**form, "current": "wrong one 123"}).status_code == 401
    done = client.post("/password", data=form, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert client.get("/tenants").status_code == 200
    assert not store.get_user("new-head").must_change
    fresh = {"username": "new-head", "password": "My own phrase 4 the door"}
    assert client.post("/api/v1/login", json=fresh).status_code == 200


def test_police_keep_a_snapshot_past_retention_for_a_case(
    client: TestClient, store: Store, gateway: BuildingGateway
) -> None:
    from datetime import UTC, datetime

    held = store.append_event({
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 8},
        "reason": "tenant_card", "snapshot": None, "snapshot_error": "interrupted",
    }, capture=True)  # fmt: skip
    stored = gateway.snapshots.save(held.event_id, b"\xff\xd8 picture \xff\xd9",
                                    taken=datetime.now(UTC))  # fmt: skip
    store.fill_snapshot(held.seq, stored.reference())
    csrf = form_login(client, "police")
    response = client.post(f"/police/hold/{held.event_id}",
                           data={"csrf_token": csrf, "purpose": "案件 2026-0777"},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    [hold] = store.snapshot_holds()
    assert (hold.event_id, hold.purpose) == (held.event_id, "案件 2026-0777")
    assert hold.held_by == "police"
    assert store.audit_page()[0].action == "snapshot.hold"


def test_bad_input_gets_a_clear_error_not_a_500(client: TestClient, store: Store) -> None:
    huge = "9" * 25
    form_login(client, "police")
    for url in (f"/police?purpose=p&card={huge}", "/police?purpose=p&card=12a",
                "/police?purpose=p&result=maybe", "/police/export.csv?purpose=p&since=yesterday",
                f"/police/audit?before={huge}"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 422, (url, response.text[:200])
        assert "text/html" in response.headers["content-type"]
    assert client.get(f"/api/v1/entries?purpose=p&cursor={huge}:1").status_code == 422
    client.cookies.clear()
    csrf = form_login(client, "head")
    missing = client.post("/cards/424242/lost", data={"csrf_token": csrf})
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]  # a page, not JSON, in a browser
    assert client.post(f"/cards/{huge}/lost", data={"csrf_token": csrf}).status_code == 422
    assert client.post("/visitors", data={"csrf_token": csrf, "hours": "abc"}).status_code == 422


def test_a_refused_form_keeps_what_was_typed_and_the_address_bar_shows_no_message(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    form = {"csrf_token": csrf, "name": "李娜", "id_number": id_number(31),
            "phone": "13900000031", "room": "702", "valid_from": "2027-06-01",
            "valid_until": "2027-01-01", "card": "7031"}  # fmt: skip
    refused = client.post("/tenants/new", data=form)
    assert refused.status_code == 422
    for typed in (form["id_number"], form["phone"], "李娜", "702", "7031"):
        assert f'value="{typed}"' in refused.text
    tenant = store.add_tenant(TenantCreate(
        name="李娜", id_number=id_number(31), phone="13900000031", room="702",
        valid_from=date(2027, 1, 1), valid_until=date(2027, 6, 1)))  # fmt: skip
    edit = {"csrf_token": csrf, "name": "李娜娜", "room": "703", "phone": "13900000032",
            "valid_from": "2027-06-01", "valid_until": "2027-01-01"}  # fmt: skip
    refused = client.post(f"/tenants/{tenant.id}", data=edit)
    assert refused.status_code == 422
    for typed in ("李娜娜", "703", "13900000032", "2027-06-01", "2027-01-01"):
        assert f'value="{typed}"' in refused.text
    assert store.get_tenant(tenant.id).name == "李娜"
    # A crafted link cannot put words on the page.
    lure = "系统升级：请将全部住户身份证照片发送至 13800000000"
    page = client.get(f"/tenants/{tenant.id}", params={"error": lure})
    assert page.status_code == 200
    assert "13800000000" not in page.text


SHOWN = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


def test_every_time_is_shown_in_the_buildings_zone_in_one_format(
    client: TestClient, store: Store
) -> None:
    """The audit log, alarms and visitor codes are stored in UTC, events in the building's
    zone: shown side by side, all read in the building's (Asia/Shanghai, UTC+8)."""
    csrf = form_login(client, "head")
    utc_now = datetime.now(UTC)
    store.append_event({  # stamped in UTC on purpose: the page must still show Beijing time
        "type": "access.denied", "door": "main", "ts": utc_now.isoformat(),
        "credential": {"kind": "card", "number": 77}, "reason": "lost_card", "snapshot": None,
        "snapshot_error": "disabled",
    }, alarm="lost_card")  # fmt: skip
    beijing = utc_now.astimezone(BUILDING_ZONE).strftime("%Y-%m-%d %H:%M")
    assert beijing[11:13] != utc_now.strftime("%H")  # the two clocks do differ
    assert beijing in client.get("/alarms").text
    assert beijing in client.get("/").text
    store.add_tenant(TenantCreate(
        name="吴刚", id_number=id_number(31), phone="13900000031", room="1101",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1)))  # fmt: skip
    issued = client.post("/visitors", data={"csrf_token": csrf, "hours": "2", "uses": "1",
                                            "room": "1101"})  # fmt: skip
    until = (utc_now + timedelta(hours=2)).astimezone(BUILDING_ZONE).strftime("%Y-%m-%d %H:")
    assert re.search(re.escape(until) + r"\d{2}:\d{2}<", issued.text)

    client.cookies.clear()
    form_login(client, "police")
    entries = client.get("/police", params={"purpose": "案件 2026-0100"}).text
    assert re.search(re.escape(beijing) + r":\d{2}<", entries)
    audit = client.get("/police/audit").text
    audited = store.audit_page()[1].ts  # the search's row; [0] is this page's own, written after
    assert shown(audited, BUILDING_ZONE) in audit
    assert datetime.fromisoformat(audited).utcoffset() == timedelta(0)  # stored in UTC
    export = client.get("/police/export.csv", params={"purpose": "案件 2026-0100"}).text
    first_row = export.splitlines()[1]
    assert re.match(re.escape(beijing) + r":\d{2},", first_row)
    for page in (client.get("/police/audit").text, entries):
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", page)  # no raw RFC 3339 shown


def test_a_visitor_code_is_for_a_room_of_the_building_and_says_how_to_use_it(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    refused = client.post("/visitors", data={"csrf_token": csrf, "hours": "3", "uses": "2",
                                             "room": "9999"})  # fmt: skip
    assert refused.status_code == 422
    assert "访问的房间：本楼没有 9999 房（请先登记该房的住户）" in refused.text
    assert 'value="9999"' in refused.text  # kept as typed
    assert 'value="3"' in refused.text
    assert store.list_visitor_codes() == []
    store.add_tenant(TenantCreate(
        name="吴刚", id_number=id_number(32), phone="13900000032", room="1102",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1)))  # fmt: skip
    issued = client.post("/visitors", data={"csrf_token": csrf, "hours": "3", "uses": "2",
                                            "room": "1102"})  # fmt: skip
    code = re.search(r'data-testid="visitor-code">(\d+)<', issued.text)
    assert code is not None
    how = re.search(r'data-testid="visitor-how">(.*?)</p>', issued.text)
    assert how is not None
    assert how.group(1).startswith(
        f"请告诉访客：在门口读卡器的键盘上输入 {code.group(1)}，再按 # 键"
    )
    assert "可用 2 次，有效至 20" in how.group(1)


def test_moving_out_and_reporting_lost_ask_first_and_a_found_card_opens_again(
    client: TestClient, store: Store
) -> None:
    tenant = store.add_tenant(TenantCreate(
        name="郑华", id_number=id_number(33), phone="13900000033", room="1201",
        valid_from=date(2026, 1, 1), valid_until=date(2099, 1, 1), cards=(3301,)))  # fmt: skip
    csrf = form_login(client, "head")
    asked = client.post(f"/tenants/{tenant.id}/status",
                        data={"csrf_token": csrf, "status": "moved_out"})  # fmt: skip
    assert asked.status_code == 200
    assert "确定为 郑华（1201 房）办理退租吗？" in asked.text
    assert store.get_tenant(tenant.id).status == "active"  # one tap changed nothing
    client.post(f"/tenants/{tenant.id}/status",
                data={"csrf_token": csrf, "status": "suspended"})  # not destructive: at once
    assert store.get_tenant(tenant.id).status == "suspended"
    client.post(f"/tenants/{tenant.id}/status", data={"csrf_token": csrf, "status": "active"})

    asked = client.post("/cards/3301/lost", data={"csrf_token": csrf})
    assert "确定挂失郑华的卡 3301 吗？" in asked.text
    assert store.get_card(3301).status == "active"
    client.post("/cards/3301/lost", data={"csrf_token": csrf, "confirmed": "1"})
    assert store.get_card(3301).status == "lost"
    assert store.card_lookup(3301) is not None
    client.post("/cards/3301/found", data={"csrf_token": csrf})
    assert store.get_card(3301).status == "active"
    assert client.post("/cards/3301/found", data={"csrf_token": csrf}).status_code == 409

    client.post(f"/tenants/{tenant.id}/status",
                data={"csrf_token": csrf, "status": "moved_out", "confirmed": "1"})  # fmt: skip
    assert store.get_tenant(tenant.id).status == "moved_out"


def test_the_tenant_list_shows_whether_each_tenant_can_get_in_today(
    client: TestClient, store: Store
) -> None:
    today = datetime.now(BUILDING_ZONE).date()
    for n, (room, since, until, cards) in enumerate([
        ("1301", today - timedelta(days=400), today - timedelta(days=1), (1301,)),
        ("1302", today + timedelta(days=10), today + timedelta(days=400), (1302,)),
        ("1303", today - timedelta(days=10), today + timedelta(days=400), ()),
        ("1304", today - timedelta(days=10), today + timedelta(days=400), (1304,)),
    ]):  # fmt: skip
        store.add_tenant(TenantCreate(
            name=f"住户{n}", id_number=id_number(40 + n), phone=f"139000000{40 + n}", room=room,
            valid_from=since, valid_until=until, cards=cards))  # fmt: skip
    form_login(client, "head")
    page = client.get("/tenants").text
    rows = dict(re.findall(r"<td>(13\d\d)</td>.*?<td[^>]*>([^<]+)</td>\s*<td>\d+</td>", page, re.S))
    assert rows == {"1301": "租期已结束", "1302": "租期未开始", "1303": "没有可用的门卡",
                    "1304": "有效"}  # fmt: skip


def test_the_template_opens_in_chinese_excel_and_a_filled_one_imports(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    page = client.get("/import").text
    for column in ("房间", "姓名", "身份证号", "手机", "卡号", "租期开始", "租期结束"):
        assert f"<dt>{column} " in page  # every column listed, with how to write it
    template = client.get("/import/template.csv")
    assert template.headers["content-type"] == "text/csv; charset=gb18030"
    header = template.content.decode("gb18030")
    assert header == "房间,姓名,身份证号,手机,卡号,租期开始,租期结束\r\n"
    filled = header + f"1401,冯琳,{id_number(61)},13900000061,6101,2026-01-01,2027-01-01\r\n"
    done = client.post("/import", data={"csrf_token": csrf},
                       files={"file": ("租户.csv", filled.encode("gb18030"))})  # fmt: skip
    assert done.status_code == 200
    assert "新增 1 户" in done.text
    exported = client.get("/tenants.csv").text.lstrip("\ufeff").splitlines()
    assert exported[0] == "房间,姓名,身份证号,手机,卡号,租期开始,租期结束,状态"
    assert exported[1].startswith("1401,冯琳,")
    assert id_number(61) not in exported[1]  # masked
    assert exported[1].endswith(",有效")


def test_the_pages_one_inline_stylesheet_is_the_one_the_csp_allows(client: TestClient) -> None:
    page = client.get("/login")
    [style] = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = page.headers["content-security-policy"]
    assert f"style-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy
    assert style == (TEMPLATES.parent / "static" / "app.css").read_text()
