"""The city pages' words, Chinese first, English on request (the `lang` cookie).

One table, so a missing translation is a missing key the tests find, not a half-English page.
Refusals come as codes (web_security's login and page refusals, a weak password, a bad
filter) and are said here in the page's language.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from web_security import passwords

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

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
    "login.title": ("登录", "Log in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.locked": (
        "失败次数过多，请 15 分钟后再试",
        "Too many failures; try again in 15 minutes",
    ),
    "login.busy": (
        "正在处理其他登录，请稍候几秒再试",
        "Busy checking other logins; try again in a few seconds",
    ),
    "login.full": ("当前登录的会话已满，请稍后再试", "Too many sessions are open; try again later"),
    "login.one_time": (
        "这是一次性密码，请先在页面上设置新密码",
        "This is a one-time password: choose a new one on the page first",
    ),
    "password.title": ("设置新密码", "Choose a new password"),
    "password.why": (
        "这是一次性密码，请先设置您自己的密码",
        "This was a one-time password: choose your own first",
    ),
    "password.current": ("当前密码", "Current password"),
    "password.new": ("新密码（至少 10 个字符）", "New password (at least 10 characters)"),
    "password.repeat": ("再输入一次新密码", "The new password again"),
    "password.differ": ("两次输入的新密码不一致", "The two new passwords differ"),
    "error.forbidden": ("此页面不属于您的角色", "This page is not for your role"),
    "error.csrf": (
        "表单已过期，请刷新页面后重试",
        "The form expired; reload the page and try again",
    ),
    "error.database": (
        "数据库暂时无法访问，请稍后再试",
        "The database cannot be reached just now; try again shortly",
    ),
    "error.not_found": ("没有找到", "Not found"),
    "refusal.password_short": ("至少要 {min} 个字符", passwords.WEAK["password_short"]),
    "refusal.password_long": ("最多 {max} 个字符", passwords.WEAK["password_long"]),
    "refusal.password_few_characters": (
        "用到的不同字符太少",
        passwords.WEAK["password_few_characters"],
    ),
    "refusal.password_sequence": (
        "是键盘或字母顺序，太容易被猜到",
        passwords.WEAK["password_sequence"],
    ),
    "refusal.password_common": ("是常见词或包含用户名", passwords.WEAK["password_common"]),
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


def word(key: str, lang: Lang) -> str:
    """The text for `key` in `lang`; the key itself if it is missing (and tests fail)."""
    pair = WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def language(request: Request) -> Lang:
    """The page's language: Chinese unless the person switched to English (a cookie)."""
    return "en" if request.cookies.get("lang") == "en" else "zh"


def api_language(request: Request) -> Lang:
    """The API's language for what it says to people (`said`): the page's switch if set, else
    the client's Accept-Language (English only when it asks for it first), else Chinese."""
    if request.cookies.get("lang") in LANGS:
        return language(request)
    accept = request.headers.get("accept-language", "").lstrip().lower()
    return "en" if accept.startswith("en") else "zh"


def weak_password(code: str, params: dict[str, object], lang: Lang) -> str:
    """A refused password in the page's words."""
    return word(f"refusal.{code}", lang).format(**params)
