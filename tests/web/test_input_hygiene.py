"""Forms refuse what a person should not type, with the reason in Chinese, and never a 500."""

from __future__ import annotations

import html
from datetime import date

import pytest
from fastapi.testclient import TestClient

from gateway.store import Store, TenantCreate
from tests.store.factories import id_number

from .test_pages import form_login

# What the page says for each refusal (gateway/web/i18n.py).
OTHER_DIGITS = "请用半角数字 0-9 输入，不要用全角数字或其他文字的数字"
INVISIBLE = "含有看不见的字符或改变文字方向的字符，请重新输入"
ROOM_FORMULA = "不能以 =、+ 或 @ 开头；以 - 开头只用于地下楼层"
MIXED = "此行不是 UTF-8 编码，与上面的行不同"


def new_tenant_form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf, "name": "李娜", "id_number": id_number(7), "phone": "13912345678",
            "room": "502", "valid_from": "2026-01-01", "valid_until": "2027-01-01",
            "card": "", **fields}  # fmt: skip


def text_of(page: str) -> str:
    return html.unescape(page)


@pytest.mark.parametrize("card", ["²", "１２３", "٣٤٥"])
def test_a_card_number_in_other_digits_is_refused_on_every_form(
    client: TestClient, store: Store, card: str
) -> None:
    # "²".isdigit() is True and int("²") raises: a 500 on the two forms of the head's pages.
    # int("１２３") is 123: the full-width number was stored as another card.
    csrf = form_login(client, "head")
    page = client.post("/tenants/new", data=new_tenant_form(csrf, card=card))
    assert page.status_code == 422
    assert f"卡号：{OTHER_DIGITS}" in text_of(page.text)
    assert store.search_tenants() == []

    tenant = store.add_tenant(TenantCreate(
        name="王芳", id_number=id_number(8), phone="13900000008", room="601",
        valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1)))  # fmt: skip
    page = client.post(f"/tenants/{tenant.id}/cards", data={"csrf_token": csrf, "number": card})
    assert page.status_code == 422  # the tenant's page again, which says why
    assert f"卡号：{OTHER_DIGITS}" in text_of(page.text)
    assert store.get_tenant(tenant.id).cards == ()

    client.cookies.clear()
    form_login(client, "police")
    page = client.get("/police", params={"purpose": "案件 1", "card": card})
    assert page.status_code == 422
    assert f"卡号：{OTHER_DIGITS}" in text_of(page.text)


def test_a_hidden_character_or_a_formula_is_refused_in_chinese(
    client: TestClient, store: Store
) -> None:
    csrf = form_login(client, "head")
    page = client.post("/tenants/new", data=new_tenant_form(csrf, name="李\u202e娜"))
    assert page.status_code == 422
    assert f"姓名：{INVISIBLE}" in text_of(page.text)
    page = client.post("/tenants/new", data=new_tenant_form(csrf, room="=1+1"))
    assert page.status_code == 422
    assert f"房间：{ROOM_FORMULA}" in text_of(page.text)
    assert store.search_tenants() == []
    client.cookies.set("lang", "en")
    page = client.post("/tenants/new", data=new_tenant_form(csrf, name="\u200b"))
    assert "Name: contains an invisible or direction-changing character" in text_of(page.text)


def test_a_csv_mixing_encodings_is_refused_in_chinese(client: TestClient, store: Store) -> None:
    csrf = form_login(client, "head")
    header = b"room,name,id_number,phone,card,valid_from,valid_until\n"
    utf8 = f"801,陈静,{id_number(11)},13800000011,5001,2026-01-01,2027-01-01\n".encode()
    gb = f"802,刘洋,{id_number(12)},13800000012,5002,2026-01-01,2027-01-01\n".encode("gb18030")
    page = client.post("/import", data={"csrf_token": csrf},
                       files={"file": ("tenants.csv", header + utf8 + gb)})  # fmt: skip
    assert page.status_code == 422
    assert f"第 3 行 · 文件：{MIXED}" in text_of(page.text)
    assert store.search_tenants() == []
