"""What the library's codes say to people, Chinese first, and which language a request wants.

Both applications' pages say a refused login (`LOGIN_REFUSAL_KEYS`), a refused page
(`PAGE_REFUSAL_KEYS`), a weak password (`WEAK`, as `refusal.<code>`) and the password page in
these words; each application adds them to its own table of words:

    WORDS.update(web_security.words.WORDS)
    lang = language(request)          # a page: Chinese unless the `lang` cookie says English
"""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from web_security.passwords import WEAK

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    # key: (中文, English)
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
    "login.full": (
        "当前登录的会话已满，请稍后再试",
        "Too many sessions are open; try again later",
    ),
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
    "password.repeat": ("再次输入新密码", "New password again"),
    "password.differ": ("两次输入的新密码不一致", "The two new passwords differ"),
    "error.forbidden": ("此页面不属于您的角色", "This page is not for your role"),
    "error.csrf": ("表单已过期，请重试", "The form expired; please try again"),
    "refusal.password_short": ("至少要 {min} 个字符", WEAK["password_short"]),
    "refusal.password_long": ("最多 {max} 个字符", WEAK["password_long"]),
    "refusal.password_few_characters": (
        "用到的不同字符太少，容易被猜到",
        WEAK["password_few_characters"],
    ),
    "refusal.password_sequence": (
        "是键盘或字母顺序的连续字符，容易被猜到",
        WEAK["password_sequence"],
    ),
    "refusal.password_common": (
        "是常见的词或包含用户名，容易被猜到",
        WEAK["password_common"],
    ),
}


def language(request: Request) -> Lang:
    """A page's language: Chinese unless the person switched to English (a cookie)."""
    return "en" if request.cookies.get("lang") == "en" else "zh"


def api_language(request: Request) -> Lang:
    """The API's language for what it says to people (`said`): the page's switch if set, else
    the client's Accept-Language (English only when it asks for it first), else Chinese."""
    if request.cookies.get("lang") in LANGS:
        return language(request)
    accept = request.headers.get("accept-language", "").lstrip().lower()
    return "en" if accept.startswith("en") else "zh"
