"""Entries as CSV rows for the police export, with a Chinese header for Excel.

    rows = (csv_row(entry) for page in export_pages(store, entry_filter) for entry in page.entries)
    # write CSV_HEADER then rows, UTF-8 after a BOM, every text cell through the formula guard

The columns follow the gateway's own entry export (gateway/web/pages_police.py), with what the
city adds: the building code and the gateway. The time is the gateway's own `ts`, with its UTC
offset, so rows from gateways in different zones (or with a wrong zone) read unambiguously.
Cells are plain values: the writer must give text starting with `=`, `+`, `-`, `@`, a tab or a
carriage return a leading `'` (OWASP's CSV-injection advice, as the gateway's csvstream does),
since a tenant's name or a room comes from a gateway and a spreadsheet would run it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

CSV_HEADER = (
    "时间", "楼栋编码", "网关", "门", "结果", "原因", "房间", "姓名", "卡号", "抓拍校验码",
    "事件编号", "序号",
)  # fmt: skip

RESULT_WORDS = {"access.granted": "准许", "access.denied": "拒绝"}
# SPEC 6's reasons in the gateway page's words (gateway/web/i18n.py); others as sent.
REASON_WORDS = {
    "tenant_card": "住户门卡", "visitor_code": "访客码", "remote_unlock": "远程开门",
    "bad_read": "读卡不完整", "unknown_card": "未登记的卡", "expired": "租期已结束",
    "not_yet_valid": "租期未开始", "lost_card": "已挂失的卡", "revoked_card": "退租时收回的卡",
    "cancelled_card": "已注销的卡", "suspended": "住户已暂停", "moved_out": "住户已退租",
    "lockdown": "封闭管控中", "wrong_pin": "密码错误", "pin_timeout": "未输入密码",
    "pin_required": "需要密码", "unknown_code": "无效的访客码", "code_expired": "访客码已过期",
    "code_used_up": "访客码次数已用完", "wrong_door": "访客码不能开这个门",
}  # fmt: skip


def csv_row(entry: dict[str, Any]) -> list[object]:
    """One entry (as `search_entries` gives it) as the cells under CSV_HEADER."""
    credential = entry.get("credential")
    snapshot = entry.get("snapshot")
    reason = entry.get("reason")
    return [
        _shown(entry.get("ts")),
        entry.get("building") or "",
        entry.get("gateway_id", ""),
        entry.get("door") or "",
        RESULT_WORDS.get(str(entry.get("type")), entry.get("type", "")),
        REASON_WORDS.get(reason, reason) if isinstance(reason, str) else "",
        entry.get("room") or "",
        entry.get("name") or "",
        credential.get("number", "") if isinstance(credential, dict) else "",
        snapshot.get("sha256", "") if isinstance(snapshot, dict) else "",
        entry.get("event_id", ""),
        entry.get("seq", ""),
    ]


def _shown(ts: Any) -> str:
    """`2026-03-01 08:00:05+08:00`: the gateway's time to the second, with its offset."""
    try:
        return datetime.fromisoformat(ts).isoformat(sep=" ", timespec="seconds")
    except (TypeError, ValueError):
        return str(ts)
