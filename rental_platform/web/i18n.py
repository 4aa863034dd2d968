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
    "fleet.street": ("街道（9 位）", "Street (9 digits)"),
    "fleet.community": ("社区（12 位）", "Community (12 digits)"),
    "fleet.code_hint": (
        "楼栋编码 440305001002-0042：街道 440305001，社区 440305001002",
        "Building code 440305001002-0042: street 440305001, community 440305001002",
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
    # Police search.
    "police.title": ("出入记录查询", "Entry search"),
    "police.audited": (
        "每次查询、查看照片和导出都会记入审计日志。",
        "Every search, picture viewed and export is written to the audit log.",
    ),
    "police.purpose_hint": ("案件编号或查询原因（必填）", "Case number or reason (required)"),
    "police.area": ("地区", "Area"),
    "police.who": ("人或卡", "Person or card"),
    "police.when": ("时间", "Time"),
    "police.street_hint": ("9 位，如 440305001", "9 digits, e.g. 440305001"),
    "police.community_hint": ("12 位，如 440305001002", "12 digits, e.g. 440305001002"),
    "police.building_hint": ("如 440305001002-0042", "e.g. 440305001002-0042"),
    "police.room_hint": ("需同时填楼栋或网关", "needs the building or the gateway"),
    "police.zone_hint": ("未注明时区的时间按北京时间", "Times without a zone are Beijing time"),
    "police.search": ("查询", "Search"),
    "police.filters": ("查询条件", "Filters"),
    "police.any": ("全部", "Any"),
    "police.granted": ("准许", "granted"),
    "police.denied": ("拒绝", "denied"),
    "police.export": ("导出 CSV（Excel 可打开）", "Export CSV (opens in Excel)"),
    "police.more": ("下一页", "Next page"),
    "police.none": ("没有符合条件的记录", "No entries match"),
    "police.page_again": ("这是下一页的结果", "A following page of results"),
    "police.time": ("时间", "Time"),
    "police.place": ("地点", "Where"),
    # Doors by their usual names (a gateway's config names them; others are shown as named).
    "door.main": ("正门", "main door"),
    "door.back": ("后门", "back door"),
    "door.side": ("侧门", "side door"),
    "police.result": ("结果", "Result"),
    "police.room": ("房间", "Room"),
    "police.name": ("姓名", "Name"),
    "police.card": ("卡号", "Card"),
    "police.picture": ("照片", "Picture"),
    "police.view_picture": ("查看照片", "View picture"),
    "police.no_picture": ("没有照片", "No picture"),
    "police.bad_before": ("页码不对", "Not a page of the audit log"),
    # The audit log.
    "audit.title": ("审计日志", "Audit log"),
    "audit.chain_ok": (
        "审计链完整：共 {rows} 条记录逐条核对无误",
        "The chain holds: {rows} rows checked",
    ),
    "audit.anchored": (
        "已由平台签名并保存在数据库以外，至第 {seq} 条",
        "Signed by the platform and kept outside the database up to row {seq}",
    ),
    "audit.not_anchored": (
        "审计链的末端尚未在数据库以外保存（未配置 --audit-anchors）",
        "The chain's head is not kept outside the database (no --audit-anchors)",
    ),
    "audit.chain_broken": ("审计链被改动：{reason}", "The chain was tampered with: {reason}"),
    "audit.seq": ("序号", "#"),
    "audit.at": ("时间", "Time"),
    "audit.who": ("用户", "User"),
    "audit.from": ("来源地址", "From"),
    "audit.action": ("操作", "Action"),
    "audit.purpose": ("事由", "Purpose"),
    "audit.params": ("条件", "Filters"),
    "audit.records": ("记录数", "Records"),
    "action.entries.query": ("查询出入记录", "searched entries"),
    "action.snapshot.view": ("查看照片", "viewed a picture"),
    "action.export.started": ("开始导出", "export started"),
    "action.export.finished": ("导出完成", "export finished"),
    "action.export.cut": ("导出中断", "export cut short"),
    "action.id_number.reveal": ("查看完整身份证号", "revealed an ID number"),
    "action.audit.view": ("查看审计日志", "read the audit log"),
    # A refused filter: the field's name, then why (the search's codes, FilterError).
    "field.street": ("街道", "Street"),
    "field.community": ("社区", "Community"),
    "field.building": ("楼栋", "Building"),
    "field.gateway_id": ("网关", "Gateway"),
    "field.card": ("卡号", "Card"),
    "field.id_number": ("身份证号", "ID number"),
    "field.room": ("房间", "Room"),
    "field.since": ("开始时间", "From"),
    "field.until": ("结束时间", "Until"),
    "field.result": ("结果", "Result"),
    "field.limit": ("每页条数", "Page size"),
    "field.cursor": ("翻页位置", "Page"),
    "field.purpose": ("查询事由", "Purpose"),
    "field.event_id": ("事件编号", "Event"),
    "field.params": ("查询条件", "Filters"),
    "filter.street_code": (
        "应为区县 6 位加街道 3 位，共 9 位数字，如 440305001",
        "the district's 6 digits then the street's 3, such as 440305001",
    ),
    "filter.community_code": (
        "应为区县、街道、社区共 12 位数字，如 440305001002",
        "district, street and community: 12 digits such as 440305001002",
    ),
    "filter.building_code": (
        "应为楼栋编码，如 440305001002-0042",
        "a building code such as 440305001002-0042",
    ),
    "filter.outside_area": (
        "不在同时填写的街道或社区范围内",
        "is not within the street or community also given",
    ),
    "filter.gateway_id": (
        "应为网关编号，如 gw-440305-0042",
        "a gateway's id such as gw-440305-0042",
    ),
    "filter.unknown_gateway": ("没有这个网关的记录", "no such gateway has sent anything"),
    "filter.room": (
        "最多 200 个字，不能含控制字符",
        "at most 200 characters, no control characters",
    ),
    "filter.room_needs_building": (
        "每栋楼都有同号的房间，请同时填写楼栋或网关",
        "a room number repeats in every building: give the building or the gateway too",
    ),
    "filter.id_number": (
        "应为 18 位：17 位数字加最后一位数字或 X",
        "18 characters: 17 digits then a digit or X",
    ),
    "filter.id_check_digit": (
        "最后一位校验码不对，请核对是否输错",
        "the check digit is wrong: mistyped?",
    ),
    "filter.time": ("时间格式不对，如 2026-03-01 08:00", "not a time such as 2026-03-01 08:00"),
    "filter.time_offset": ("需要带时区，如 +08:00", "needs its UTC offset, such as +08:00"),
    "filter.time_range": ("年份应在 1970 到 2099 之间", "the year must be 1970 to 2099"),
    "filter.until_before_since": ("应晚于开始时间", "must be later than the start"),
    "filter.result": ("只能是准许或拒绝", "granted or denied"),
    "filter.card": ("应为 0 到 4294967295 的整数", "a whole number from 0 to 4294967295"),
    "filter.limit": ("应为 1 到 500 的整数", "a whole number from 1 to 500"),
    "filter.cursor": (
        "翻页位置不属于这次查询，请重新查询",
        "this page belongs to another search: search again",
    ),
    "filter.purpose_required": (
        "必须填写（案件编号或查询原因）",
        "required: the case number or the reason",
    ),
    "filter.purpose": (
        "最多 200 个字，不能含控制字符或身份证号",
        "at most 200 characters, no control characters or ID numbers",
    ),
    "filter.event_id": ("不是事件编号", "not an event id"),
    "filter.ambiguous": (
        "有多条记录使用这个编号，请按网关查询",
        "several entries carry this id: search by gateway",
    ),
    "filter.unknown_filter": ("不是可用的查询条件", "is not a filter"),
    "filter.repeated": ("只能填写一次", "given more than once"),
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


def refused(field: str, code: str, message: str, lang: Lang) -> str:
    """A refused filter in `lang`: the field's name, then why (the English `message` when
    the code has no words here)."""
    name = word(f"field.{field}", lang)
    why = word(f"filter.{code}", lang) if f"filter.{code}" in WORDS else message
    return f"{name}：{why}" if lang == "zh" else f"{name}: {why}"
