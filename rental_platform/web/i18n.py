"""The city pages' words, Chinese first, English on request (the `lang` cookie).

One table, so a missing translation is a missing key the tests find, not a half-English page.
Refusals come as codes (web_security's login and page refusals and a weak password, in
web_security's own words; a bad filter) and are said in the page's language.
"""

from __future__ import annotations

from web_security import words
from web_security.words import Lang

WORDS: dict[str, tuple[str, str]] = {
    # key: (中文, English)
    "app.title": ("出租屋门禁 · 市平台", "Rental entry · city platform"),
    "lang.switch": ("English", "中文"),
    "nav.search": ("出入查询", "Entry search"),
    "nav.audit": ("审计日志", "Audit log"),
    "nav.fleet": ("设备状态", "Gateways"),
    "nav.logout": ("退出", "Log out"),
    "role.police": ("公安", "police"),
    "role.district": ("街道/区", "district"),
    "common.back": ("返回", "Back"),
    "common.save": ("保存", "Save"),
    "common.filter": ("筛选", "Filter"),
    "common.clear": ("清除条件", "Clear"),
    "common.any": ("全部", "Any"),
    "common.yes": ("是", "yes"),
    "common.no": ("否", "no"),
    "common.unknown": ("未知", "unknown"),
    "error.database": (
        "数据库暂时无法访问，请稍后再试",
        "The database cannot be reached just now; try again shortly",
    ),
    "error.not_found": ("没有找到", "Not found"),
    # The fleet.
    "fleet.title": ("设备状态", "Gateways"),
    "fleet.street": ("街道代码", "Street code"),
    "fleet.community": ("社区代码", "Community code"),
    "fleet.code_hint": (
        "楼栋编码 440305001002-0042 中：街道 001，社区 002",
        "In building code 440305001002-0042: street 001, community 002",
    ),
    "fleet.count": (
        "共 {all} 台，在线 {online} 台，需要关注 {attention} 台",
        "{all} gateways, {online} online, {attention} need attention",
    ),
    "fleet.none": ("没有符合条件的设备", "No gateway matches"),
    "fleet.gateway": ("设备", "Gateway"),
    "fleet.building": ("楼栋编码", "Building code"),
    "fleet.state": ("状态", "State"),
    "fleet.since": ("自", "Since"),
    "fleet.online": ("在线", "online"),
    "fleet.offline": ("离线", "offline"),
    "fleet.silent": ("超过 {minutes} 分钟没有消息", "Silent for over {minutes} minutes"),
    "fleet.last_heard": ("最后消息", "Last heard"),
    "fleet.queue": ("待上传事件", "Events queued"),
    "fleet.registry": ("住户名单版本", "Registry version"),
    "fleet.version": ("软件版本", "Software version"),
    "fleet.clock": ("时钟已同步", "Clock synchronised"),
    "fleet.readers": ("读卡器", "Readers"),
    "fleet.readers_ok": ("正常", "all online"),
    "fleet.readers_off": ("离线：{doors}", "offline: {doors}"),
    "fleet.camera": ("摄像头", "Camera"),
    "fleet.camera_ok": ("正常", "working"),
    "fleet.problems": ("问题", "Problems"),
    "fleet.all_fine": ("正常", "fine"),
    "fleet.detail": ("详情", "Details"),
    "fleet.never": ("从未收到", "never"),
    "fleet.no_building": ("（未登记楼栋）", "(no building code yet)"),
    "fleet.shown_in": ("时间为该楼栋所在时区", "Times are in the building's own zone"),
    # Bad filters: the field's name, then what is wrong.
    "filter.street": ("街道代码：应为 3 位数字，如 001", "Street code: 3 digits, such as 001"),
    "filter.community": (
        "社区代码：应为 3 位数字，如 002",
        "Community code: 3 digits, such as 002",
    ),
    "filter.bad_request": ("请求的参数不对：{fields}", "Bad parameters: {fields}"),
    # What a snapshot_error says about a camera (the gateway's words for them).
    "camera.camera_offline": ("摄像头离线", "camera offline"),
    "camera.stale_frame": ("摄像头画面停住了", "the camera's picture was stale"),
    "camera.timeout": ("摄像头没有及时给出画面", "the camera took too long"),
    "camera.no_frame_yet": ("摄像头刚启动，还没有画面", "no picture from the camera yet"),
    "camera.bad_image": ("摄像头画面损坏", "damaged picture from the camera"),
    "camera.encode_failed": ("画面无法保存为图片", "the picture could not be encoded"),
}

WORDS.update(words.WORDS)  # the login's, the password page's, web_security's refusals


def word(key: str, lang: Lang) -> str:
    """The text for `key` in `lang`; the key itself if it is missing (and tests fail)."""
    pair = WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def weak_password(code: str, params: dict[str, object], lang: Lang) -> str:
    """A refused password in the page's words."""
    return word(f"refusal.{code}", lang).format(**params)
