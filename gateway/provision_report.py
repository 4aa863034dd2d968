"""The installer's provisioning report: a line per step, in Chinese (the default) or English.

Steps carry keys and values, never sentences; the words are below (the page's table,
gateway/web/i18n.py, takes them in as `provision.<key>` so one test checks both languages of
every word). The marks stay ASCII in both languages, so a report can be searched for FAIL:

    [ OK ] 读卡器密钥 main.scbk：已创建
    [PASS] 读卡器 main（地址 1）：通过 — 原处于安装模式；已设密钥（KEYSET），安全通道已建立
    通过：可以验收签字
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gateway.provision import Page

Lang = Literal["zh", "en"]
STATUSES = ("created", "updated", "unchanged", "pass", "fail", "pending")
_MARKS = {"fail": "FAIL", "pending": "WAIT", "pass": "PASS"}

# key: (Chinese, English), with {value} blanks.
WORDS: dict[str, tuple[str, str]] = {
    "reader_key": ("读卡器密钥 {file}", "reader key {file}"),
    "mqtt_key": ("MQTT 客户端私钥", "MQTT client key"),
    "mqtt_request": ("MQTT 证书请求", "MQTT certificate request"),
    "page_address": ("网页地址", "page address"),
    "page_key": ("网页私钥", "page key"),
    "page_request": ("网页证书请求", "page certificate request"),
    "page_self_signed": ("网页自签名证书", "page self-signed certificate"),
    "page_city_certificate": ("市平台签发的网页证书", "page certificate from the city"),
    "city_ca": ("市平台 CA 证书", "city CA certificate"),
    "uplink": ("上传", "uplink"),
    "config_file": ("配置文件", "config file"),
    "check_config": ("配置检查", "check-config"),
    "head_account": ("楼长账号", "building head account"),
    "reader": ("读卡器 {door}（地址 {address}）", "reader {door} (address {address})"),
    "camera": ("摄像头", "camera"),
    "broker": ("MQTT 服务器", "broker"),
    "sticker": ("网页贴纸（打印后贴在网关盒上）", "page sticker (print it for the gateway's box)"),
    "status.created": ("已创建", "created"),
    "status.updated": ("已更新", "updated"),
    "status.unchanged": ("未变", "unchanged"),
    "status.pass": ("通过", "pass"),
    "status.fail": ("失败", "fail"),
    "status.pending": ("等待", "pending"),
    "path": ("{path}", "{path}"),
    "config_problems": ("配置有问题：{problems}", "{problems}"),
    "accounts_exist": ("已有账号", "accounts exist"),
    "account_created": (
        "用户 {user}，一次性密码见下方；首次登录时网页会要求设新密码",
        "user {user}, one-time password printed below; the page asks for a new one at the first"
        " login",
    ),
    "reader_key_bad": (
        "不是 32 个十六进制字符；删除它再运行即生成新的（读卡器需重新进入安装模式）",
        "not 32 hex characters; remove it to make a new one (the reader must then be put back in"
        " install mode)",
    ),
    "key_bad": (
        "{path} 不是 PEM 格式的 EC 私钥；删除它再运行即生成新的（以及新的证书请求）",
        "{path} is not a PEM EC private key; remove it to make a new one (and a new certificate"
        " request)",
    ),
    "send_request": (
        "把 {path} 交给市平台；把签发的证书放到 {signed}",
        "send {path} to the city; put the certificate it signs in {signed}",
    ),
    "no_interface_address": (
        "网卡 {interface} 没有 IPv4 地址：请接好网线，或改正表格中的 web_interface",
        "interface {interface} has no IPv4 address: connect it, or fix web_interface in the"
        " spreadsheet",
    ),
    "new_fingerprint": (
        "{path}；指纹变了：请重新打印贴纸",
        "{path}; a new fingerprint: print a new sticker",
    ),
    "city_certificate_wrong": (
        "{path} 不是 {key} 的证书；删除它，或换成市平台签发的那张",
        "{path} is not a certificate for {key}; remove it or put the one the city signed",
    ),
    "no_broker": (
        "表格中没有 MQTT 服务器：只在本地运行",
        "no broker in the spreadsheet: runs locally",
    ),
    "waiting": (
        "等待{wanting}；在此期间本楼在本地正常工作；备齐后再运行一次",
        "waiting for {wanting}; the building works locally meanwhile; run provision again then",
    ),
    "want_mqtt_certificate": (
        "市平台签发的证书 keys/mqtt-client.crt",
        "the city's signed certificate keys/mqtt-client.crt",
    ),
    "want_city_ca": ("市平台 CA（--ca-file）", "the city CA (--ca-file)"),
    "want_command_key": (
        "平台的指令公钥（--command-public-key）",
        "the platform's command key (--command-public-key)",
    ),
    "reader_secure": ("已用自己的密钥建立安全通道", "secure channel with its key"),
    "reader_silent": (
        "没有应答：请检查接线、地址、波特率和电源",
        "does not answer: check wiring, address, baud, power",
    ),
    "reader_refused_key": (
        "不接受新密钥（{error}）；是否处于安装模式？",
        "refused its new key ({error}); is it in install mode?",
    ),
    "reader_keyed": (
        "原处于安装模式；已设密钥（KEYSET），安全通道已建立",
        "was in install mode; key set (KEYSET), secure channel up",
    ),
    "frame": ("画面 {width}x{height}", "frame {width}x{height}"),
    "no_frame": ("{seconds} 秒内没有画面：{reason}", "no frame within {seconds} s: {reason}"),
    "broker_failed": ("{host}:{port}：{error}", "{host}:{port}: {error}"),
    "broker_ok": (
        "{host}:{port} 用本机证书以 {version} 应答",
        "{host}:{port} answered over {version} with our certificate",
    ),
    "verdict_pass": ("通过：可以验收签字", "PASS: ready for sign-off"),
    "verdict_fail": ("失败：请看标有 FAIL 的行", "FAIL: see the lines marked FAIL"),
    "verdict_waiting": ("（{count} 项等待中，见 WAIT）", " ({count} waiting, see WAIT)"),
    "page_urls": ("网页地址：{urls}", "The page: {urls}"),
    "page_fingerprint": (
        "证书的 SHA-256 指纹：{fingerprint}",
        "Its certificate's SHA-256 fingerprint: {fingerprint}",
    ),
    "one_time_password": (
        "{user} 的一次性密码（只显示这一次；首次登录时须更改）：{password}",
        "One-time password of {user} (shown once; change it at first login): {password}",
    ),
}
_SEPARATORS = {"zh": ("：", "，", " — "), "en": (": ", ", ", " - ")}


class Words(tuple[str, ...]):
    """A value that is itself words: keys of WORDS, said in the line's language and listed."""


def say(key: str, lang: Lang, /, **values: Any) -> str:
    """The words for `key` in `lang`, blanks filled (a `Words` value said in `lang` too)."""
    zh, en = WORDS[key]
    filled = {name: _SEPARATORS[lang][1].join(say(k, lang) for k in value)
              if isinstance(value, Words) else value for name, value in values.items()}  # fmt: skip
    return (zh if lang == "zh" else en).format(**filled)


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the installer's report: what (`name`, its `values`), how it went, and why
    (`detail`, a key of WORDS filled from `values`; or none)."""

    name: str
    status: str  # one of STATUSES
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self, lang: Lang = "zh") -> str:
        mark = _MARKS.get(self.status, " OK ")
        colon, _, dash = _SEPARATORS[lang]
        said = f"[{mark}] {say(self.name, lang, **self.values)}{colon}"
        said += say(f"status.{self.status}", lang)
        return said + (dash + say(self.detail, lang, **self.values) if self.detail else "")


@dataclass(slots=True)
class Report:
    """Everything provisioning did and found; `ok` when nothing failed."""

    steps: list[Step] = field(default_factory=list)
    one_time_password: str | None = None
    page: Page | None = None

    def add(self, name: str, status: str, detail: str = "", **values: Any) -> Step:
        step = Step(name, status, detail, values)
        self.steps.append(step)
        return step

    @property
    def ok(self) -> bool:
        return not any(step.failed for step in self.steps)

    def text(self, lang: Lang = "zh") -> str:
        lines = [step.line(lang) for step in self.steps]
        verdict = say("verdict_pass" if self.ok else "verdict_fail", lang)
        pending = [s for s in self.steps if s.status == "pending"]
        if self.ok and pending:
            verdict += say("verdict_waiting", lang, count=len(pending))
        return "\n".join([*lines, verdict])
