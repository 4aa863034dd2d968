"""What a part finds in its health check, as a code and its parameters.

A problem fails the part (the watchdog stops being fed, systemd restarts it); a warning is worth
an installer's visit and fails nothing. Parts write findings, not sentences: `/healthz` and the
logs say them in English, the installer's page in the page's language, from the words below
(the page's table, gateway/web/i18n.py, takes them in as `health.<code>`). Kept here, without
the page's imports, because every part process reports its health.

    report = health_report([finding("bus_stopped", bus="rs485-1")], [])
    said(report["problems"][0], "en")   # 'bus rs485-1 stopped'
"""

from __future__ import annotations

from typing import Any, Literal

Finding = dict[str, Any]  # {"code": ..., and its parameters}

# code: (Chinese, English), with {parameter} blanks.
WORDS: dict[str, tuple[str, str]] = {
    "store_not_writable": ("数据库无法写入", "store not writable"),
    "door_timers_stalled": ("门的计时停止了", "door timers stalled"),
    "door_socket_stopped": ("门的指令通道停止了", "door command socket stopped"),
    "bus_stopped": ("读卡器线路 {bus} 停止了", "bus {bus} stopped"),
    "camera_worker_stopped": ("摄像头抓拍程序停止了", "camera capture worker stopped"),
    "camera_socket_stopped": ("摄像头请求通道停止了", "camera request socket stopped"),
    "web_server_stopped": ("网页服务停止了", "web server stopped"),
    "web_watch_stopped": ("网页的记录跟踪停止了", "web journal watch stopped"),
    "uplink_stopped": ("上传程序停止了", "uplink stopped"),
    "uplink_thread_stopped": ("上传线程停止了", "uplink thread stopped"),
    "command_worker_stopped": ("市平台指令的执行程序停止了", "command worker stopped"),
    "uplink_watch_stopped": ("上传的记录跟踪停止了", "uplink journal watch stopped"),
    "nginx_stopped": ("网页前端（nginx）停止了", "nginx stopped"),
    "part_down": ("{part} 部分没有运行", "{part} part not running"),
    "clock_not_synced": (
        "时钟没有校准：记录的时间可能不对",
        "clock not synchronised: event times may be wrong",
    ),
    "disk_low": (
        "数据盘空间不足：只剩 {free_mb} MB（低于 {floor_mb} MB 时停止抓拍，给出入记录留出空间）",
        "data disk low: {free_mb} MB free (snapshots stop below {floor_mb} MB so the journal"
        " keeps its room)",
    ),
    "mdns_failed": (
        "暂时无法用名称 {host} 找到本机（用 IP 地址仍可打开网页）",
        "{host} not answered over mDNS: {error}",
    ),
}


def finding(code: str, **params: Any) -> Finding:
    """A finding with this code (a key of WORDS) and the values its words name."""
    if code not in WORDS:
        raise KeyError(f"no words for health finding {code!r}")
    return {"code": code, **params}


def said(item: Finding, lang: Literal["zh", "en"]) -> str:
    """The finding in words; a code this release does not know (a newer part) as it is."""
    pair = WORDS.get(str(item.get("code")))
    if pair is None:
        return str(item.get("code"))
    params = {key: value for key, value in item.items() if key != "code"}
    return (pair[0] if lang == "zh" else pair[1]).format_map(_Blank(params))


class _Blank(dict[str, Any]):
    """Formatting values: a blank the finding did not fill stays visible instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def health_report(problems: list[Finding], warnings: list[Finding], **rest: Any) -> dict[str, Any]:
    """A part's health report: failing when it found a problem."""
    return {"status": "ok" if not problems else "failing", "problems": problems,
            "warnings": warnings, **rest}  # fmt: skip
