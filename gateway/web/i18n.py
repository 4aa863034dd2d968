"""The page's words, Chinese first, English on request (the `lang` cookie).

One table, so a missing translation is a missing key the tests find, not a half-English page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway import provision_report, tenant_csv
from gateway.parts import findings
from gateway.store import ValidationError, validation
from web_security import words
from web_security.words import LANGS as LANGS
from web_security.words import Lang as Lang

WORDS: dict[str, tuple[str, str]] = {
    # key: (中文, English)
    "app.title": ("出租屋门禁", "Building entry"),
    "lang.switch": ("English", "中文"),
    "nav.dashboard": ("概览", "Overview"),
    "nav.tenants": ("住户", "Tenants"),
    "nav.alarms": ("告警", "Alarms"),
    "nav.visitors": ("访客码", "Visitor codes"),
    "nav.import": ("导入", "Import"),
    "nav.entries": ("出入记录", "Entry log"),
    "nav.audit": ("审计日志", "Audit log"),
    "nav.diagnostics": ("设备诊断", "Diagnostics"),
    "nav.logout": ("退出", "Log out"),
    "login.setup": (
        "首次使用？输入设置码创建楼长账号",
        "First use? Create the building head's account",
    ),
    "setup.title": ("创建楼长账号", "Create the building head's account"),
    "setup.code": (
        "设置码（gateway run 首次启动时打印）",
        "Setup code (printed by gateway run on first start)",
    ),
    "setup.bad_code": ("设置码无效或已使用", "The setup code is wrong or was used already"),
    "setup.submit": ("创建", "Create"),
    "dash.doors": ("门与读卡器", "Doors and readers"),
    "dash.online": ("在线", "online"),
    "dash.offline": ("离线", "offline"),
    "dash.today": ("今日出入", "Entries today"),
    "dash.granted": ("准许", "granted"),
    "dash.denied": ("拒绝", "denied"),
    "dash.alarms": ("未处理告警", "Open alarms"),
    "dash.completeness": ("信息采集率", "Information collection rate"),
    "dash.rooms": ("有登记住户的房间", "Rooms with registered tenants"),
    "dash.complete": (
        "资料完整的住户（有卡、在租期内）",
        "Tenants with complete records (card, lease current)",
    ),
    "tenant.name": ("姓名", "Name"),
    "tenant.id_number": ("身份证号", "ID number"),
    "tenant.phone": ("手机", "Phone"),
    "tenant.room": ("房间", "Room"),
    "tenant.valid_from": ("租期开始", "Lease from"),
    "tenant.valid_until": ("租期结束", "Lease until"),
    "tenant.status": ("状态", "Status"),
    "tenant.lease": ("租期", "Lease"),
    "tenant.cards": ("门卡", "Cards"),
    "tenant.add": ("登记住户", "Register a tenant"),
    "tenant.save": ("保存", "Save"),
    "tenant.edit": ("修改资料", "Edit the record"),
    "tenant.search": ("搜索", "Search"),
    "tenant.none": ("没有符合的住户", "No tenant matches"),
    "tenant.suspend": ("暂停", "Suspend"),
    "tenant.activate": ("恢复", "Reactivate"),
    "tenant.move_out": ("退租", "Move out"),
    "tenant.export": ("导出 CSV", "Export CSV"),
    "tenant.saved": ("已保存", "Saved"),
    "status.active": ("有效", "active"),
    "status.suspended": ("已暂停", "suspended"),
    "status.moved_out": ("已退租", "moved out"),
    "state.lease_ended": ("租期已结束", "lease ended"),
    "state.lease_not_started": ("租期未开始", "lease not started"),
    "state.no_card": ("没有可用的门卡", "no working card"),
    "card.active": ("有效", "active"),
    "card.lost": ("已挂失", "lost"),
    "card.revoked": ("退租时已收回", "handed back at move-out"),
    "card.cancelled": ("已注销", "cancelled"),
    "card.add": ("添加门卡", "Add a card"),
    "card.number": ("卡号", "Card number"),
    "card.enroll": ("在门口读卡器刷新卡", "Present the new card at the door reader"),
    "card.waiting_busy": (
        "已有其他页面在等待刷卡，请关闭多余的页面后再试",
        "Another page is already waiting for a card; close the others and try again",
    ),
    "card.waiting": ("等待刷卡…", "Waiting for the card…"),
    "card.polls_session": (
        "已有其他页面在等待刷卡，请关闭它们后再试",
        "Other pages are already waiting for a card; close them and try again",
    ),
    "card.polls_total": (
        "同时等待刷卡的页面太多，请稍后再试",
        "Too many pages are waiting for a card; try again later",
    ),
    "card.report_lost": ("挂失", "Report lost"),
    "card.reinstate": ("解挂（找回了）", "Found again: reinstate"),
    "card.cancel": ("注销", "Cancel the card"),
    "confirm.title": ("请确认", "Please confirm"),
    "confirm.no": ("取消", "Cancel"),
    "confirm.move_out": ("确定为 %s（%s 房）办理退租吗？", "Move %s (room %s) out?"),
    "confirm.move_out_means": (
        "退租后，此人的门卡全部收回，不能再开门；记录会保留。",
        "Their cards are revoked and open no door any more; the records are kept.",
    ),
    "confirm.lost": ("确定挂失%s的卡 %s 吗？", "Report %s's card %s lost?"),
    "confirm.lost_means": (
        "挂失后这张卡不能开门，有人刷它时会告警；找回后可以解挂。",
        "The card opens no door and raises an alarm when presented; if it is found, reinstate"
        " it.",
    ),
    "confirm.cancel": ("确定注销%s的卡 %s 吗？", "Cancel %s's card %s for good?"),
    "confirm.cancel_means": (
        "注销后这张卡永远不能再开门，也不能解挂或再发给别人；有人刷它时会告警。",
        "The card never opens a door again and cannot be reinstated or given to anyone else;"
        " it raises an alarm when presented.",
    ),
    "tenant.extend": ("延期", "Extend"),
    "tenant.extend_to": ("租期延至", "Extend the lease to"),
    # Why a door opened or did not (SPEC 6 reasons), what raised an alarm, what the police
    # did (audit actions): shown in words, never as their codes.
    "reason.tenant_card": ("住户门卡", "tenant's card"),
    "reason.visitor_code": ("访客码", "visitor code"),
    "reason.remote_unlock": ("远程开门", "remote unlock"),
    "reason.bad_read": ("读卡不完整，请重新刷卡", "incomplete read"),
    "reason.unknown_card": ("未登记的卡", "unknown card"),
    "reason.expired": ("租期已结束", "lease ended"),
    "reason.not_yet_valid": ("租期未开始", "lease not started"),
    "reason.lost_card": ("已挂失的卡", "card reported lost"),
    "reason.revoked_card": ("退租时收回的卡", "card handed back at move-out"),
    "reason.cancelled_card": ("已注销的卡", "card cancelled"),
    "reason.suspended": ("住户已暂停", "tenant suspended"),
    "reason.moved_out": ("住户已退租", "tenant moved out"),
    "reason.lockdown": ("封闭管控中", "lockdown"),
    "reason.wrong_pin": ("密码错误", "wrong PIN"),
    "reason.pin_timeout": ("未输入密码", "PIN not entered in time"),
    "reason.pin_required": ("需要密码", "PIN required"),
    "reason.unknown_code": ("无效的访客码", "unknown visitor code"),
    "reason.code_expired": ("访客码已过期", "visitor code expired"),
    "reason.code_used_up": ("访客码次数已用完", "visitor code used up"),
    "reason.wrong_door": ("访客码不能开这个门", "visitor code not for this door"),
    # The demo's console: labels said in both languages ("模拟楼栋 Simulated building").
    "demo.building": ("模拟楼栋", "Simulated building"),
    "demo.web_page": ("网页", "Web page"),
    "demo.health": ("健康", "health"),
    "demo.passwords": (
        "一次性密码（首次登录后须设新密码）",
        "One-time passwords (the first login asks for a new one)",
    ),
    "demo.role.building_head": ("楼长", "building head"),
    "demo.role.police": ("民警", "police"),
    "demo.role.installer": ("安装员", "installer"),
    "demo.user": ("用户名", "user"),
    "demo.doors": ("门", "Doors"),
    "demo.reader": ("读卡器", "reader"),
    "demo.secure": ("安全通道", "secure channel"),
    "demo.processes": ("进程", "Processes"),
    "demo.log": ("日志", "their log"),
    "demo.camera": ("摄像头", "Camera"),
    "demo.synthetic": ("合成画面", "synthetic scene"),
    "demo.snapshots": ("抓拍", "snapshots"),
    "demo.tenants": ("租户", "Tenants"),
    "demo.card": ("卡", "card"),
    "demo.broker": ("城市平台", "City broker"),
    "demo.broker_does": ("事件上行，签名命令下行", "events up, signed commands down"),
    "demo.visitor": ("访客码", "Visitor code"),
    "demo.visiting": ("访问", "visiting"),
    "demo.uses": ("次", "uses"),
    "demo.hours": ("小时", "hours"),
    "demo.type": ("输入", "Type"),
    "demo.present": ("刷该租户的卡", "present that tenant's card"),
    "demo.card_number": ("卡号", "a card number"),
    "demo.keypad_code": ("在键盘上输入访客码", "the visitor code at the keypad"),
    "demo.contact": ("门磁", "door contact"),
    "demo.quit": ("退出", "quit"),
    "demo.city_commands": ("城市命令", "City commands"),
    "demo.bye": ("再见", "bye"),
    "demo.city_acked": (
        "城市平台已存好并确认至 seq {acked}；",
        "the city platform stored and acknowledged up to seq {acked}",
    ),
    "demo.keypad": ("键盘", "keypad"),
    "demo.help": ("可输入", "type"),
    "demo.presenting": ("刷卡", "presenting"),
    "demo.too_big": ("卡号太大", "card number too large"),
    "demo.no_decision": ("尚无结果，有结果时会显示", "no decision yet; it will show when it comes"),
    "demo.released": (
        "锁已打开 {seconds} 秒；", "lock released for {seconds} s (OUT at the reader)"
    ),
    "demo.needs_broker": ("城市命令需要", "city commands need"),
    "demo.usage": ("用法", "usage"),
    "demo.not_delivered": ("命令未送达", "command not delivered"),
    "demo.city_command": ("城市命令", "city command"),
    "demo.executed": ("已执行", "executed"),
    "demo.rejected": ("被拒绝", "rejected"),
    "demo.snapshot": ("抓拍", "snapshot"),
    # What the demo's console says of events other than entries.
    "event.door.forced": ("门被强行打开", "door forced open"),
    "event.door.held_open": ("门长时间未关", "door held open"),
    "event.reader.offline": ("读卡器离线", "reader offline"),
    "event.reader.online": ("读卡器恢复", "reader back online"),
    "event.reader.tamper": ("读卡器被拆动", "reader tampered with"),
    "event.camera.offline": ("摄像头离线", "camera offline"),
    "event.camera.online": ("摄像头在线", "camera online"),
    "event.command.executed": ("执行了市平台的指令", "command from the city executed"),
    "event.command.rejected": ("拒绝了市平台的指令", "command from the city refused"),
    "event.tenant.changed": ("住户登记有变化", "tenant record changed"),
    # What became of an entry's snapshot (the event's snapshot_error; "stored" when it was).
    "snapshot.stored": ("已保存", "stored"),
    "snapshot.interrupted": ("抓拍时系统中断", "interrupted by a restart"),
    "snapshot.timeout": ("摄像头没有及时给出画面", "the camera took too long"),
    "snapshot.camera_offline": ("摄像头离线", "camera offline"),
    "snapshot.stale_frame": ("摄像头画面停住了", "the camera's picture was stale"),
    "snapshot.no_frame_yet": ("摄像头刚启动，还没有画面", "no picture from the camera yet"),
    "snapshot.bad_image": ("摄像头画面损坏", "damaged picture from the camera"),
    "snapshot.disabled": ("没有安装摄像头", "no camera"),
    "snapshot.encode_failed": ("画面无法保存为图片", "the picture could not be encoded"),
    "snapshot.disk_low": ("存储空间不足", "disk low"),
    "snapshot.write_failed": ("图片无法写入存储", "the picture could not be written"),
    # Doors without a label of their own (config doors.N.label), by their usual names.
    "door.main": ("正门", "main door"),
    "door.back": ("后门", "back door"),
    "door.side": ("侧门", "side door"),
    "alarm.door_forced": ("门被强行打开", "door forced open"),
    "alarm.door_held_open": ("门长时间未关", "door held open"),
    "alarm.reader_tamper": ("读卡器被拆动", "reader tampered with"),
    "alarm.lost_card": ("有人刷了已挂失的卡", "a card reported lost was presented"),
    "alarm.cancelled_card": ("有人刷了已注销的卡", "a cancelled card was presented"),
    "action.entries.query": ("查询出入记录", "searched the entry log"),
    "action.snapshot.view": ("查看抓拍", "viewed a snapshot"),
    "action.snapshot.hold": ("保留抓拍", "kept a snapshot"),
    "action.id_number.reveal": ("查看身份证号", "revealed an ID number"),
    "action.export.started": ("开始导出", "started an export"),
    "action.export.finished": ("导出完成", "finished an export"),
    "action.export.cut": ("导出中断", "export cut off"),
    "action.audit.view": ("查看审计日志", "viewed the audit log"),
    "import.result": ("新增 %s 户，更新 %s 户（其中未变 %s 户），新增门卡 %s 张",
                      "%s added, %s updated (%s of them unchanged), %s new cards"),
    "alarm.kind": ("类型", "Kind"),
    "alarm.raised": ("时间", "Raised"),
    "alarm.door": ("门", "Door"),
    "alarm.ack": ("确认", "Acknowledge"),
    "alarm.whose": ("谁的卡", "Whose card"),
    "alarm.in_room": ("（%s 房）", " (room %s)"),
    "alarm.state": ("处理", "Handled"),
    "alarm.snapshot_audited": (
        "查看抓拍会记入审计日志。", "Viewing a snapshot is written to the audit log."
    ),
    "alarm.none": ("没有告警", "No alarms"),
    "visitor.create": ("生成访客码", "Create a visitor code"),
    "visitor.hours": ("有效小时数", "Valid for hours"),
    "visitor.uses": ("可用次数", "Uses"),
    "visitor.code": ("访客码", "Visitor code"),
    "visitor.how": (
        "请告诉访客：在门口读卡器的键盘上输入 %s，再按 # 键。可用 %s 次，有效至 %s。",
        "Tell the visitor: at the door reader's keypad, type %s, then press #. Works %s times,"
        " until %s.",
    ),
    "visitor.visiting": ("访问的房间", "Room visited"),
    "import.file": ("住户 CSV 文件", "Tenant CSV file"),
    "import.template": ("下载模板（Excel 可直接打开）", "Download the template (opens in Excel)"),
    "import.columns": ("表格的列（第一行是表头，中文或英文均可）",
                       "The sheet's columns (the first line is the header, Chinese or English)"),
    "import.col.room": ("如 0301；地下室写 -1-02", "e.g. 0301; a basement room -1-02"),
    "import.col.name": ("住户姓名", "the tenant's name"),
    "import.col.id_number": ("18 位身份证号，最后一位可以是 X；在 Excel 里请把这一列设为“文本”",
                             "18 characters, the last may be X; format the column as text in"
                             " Excel"),
    "import.col.phone": ("11 位手机号", "an 11-digit mobile number"),
    "import.col.card": ("门卡卡号，可以不填；多张卡用 ; 隔开", "card numbers, may be empty;"
                        " several separated by ;"),
    "import.col.valid_from": ("租期开始，如 2026-12-07", "lease from, e.g. 2026-12-07"),
    "import.col.valid_until": ("租期结束，如 2027-12-06", "lease until, e.g. 2027-12-06"),
    "import.again": (
        "同一人（身份证号相同）再导入时会更新资料，不会重复登记；整个文件有一处错误就全部不导入。",
        "A person already registered (same ID number) is updated, never registered twice; one"
        " error anywhere and nothing is imported.",
    ),
    "import.submit": ("导入", "Import"),
    "import.done": ("导入完成", "Imported"),
    "import.line": ("第 %s 行", "line %s"),
    "import.the_file": ("文件", "file"),
    "import.header": ("表头", "header"),
    "import.row": ("这一行", "row"),
    "import.failed": ("没有导入：请修正以下行", "Nothing imported: fix these rows"),
    "police.purpose": ("事由（案件编号）", "Purpose (case number)"),
    "police.since": ("开始时间", "From"),
    "police.until": ("结束时间", "Until"),
    "police.door": ("门", "Door"),
    "police.card": ("卡号", "Card"),
    "police.result": ("结果", "Result"),
    "police.any": ("全部", "any"),
    "police.search": ("查询", "Search"),
    "police.export": ("导出 CSV", "Export CSV"),
    "police.time": ("时间", "Time"),
    "police.snapshot": ("抓拍", "Snapshot"),
    "police.no_snapshot": ("无抓拍", "no snapshot"),
    "police.more": ("更多", "More"),
    "police.hold": ("保留此抓拍（超过保存期限）", "Keep this picture past retention"),
    "police.reveal": ("显示完整身份证号（将被审计）", "Show the full ID number (audited)"),
    "police.audited": ("每次查询都记入审计日志", "Every query is written to the audit log"),
    "police.none": ("没有记录", "No entries"),
    "police.all_doors": ("全部门", "every door"),
    "police.view_picture": ("查看抓拍", "View the picture"),
    "police.pictures_audited": (
        "抓拍不自动显示：每看一张都以本次事由记入审计日志。",
        "Pictures are not shown by themselves: each one viewed is audited with this purpose.",
    ),
    "police.held": (
        "已保留这张抓拍，超过保存期限也不会删除。", "The picture is kept past retention."
    ),
    "police.only_tenant": ("只看这位住户：", "Only this tenant: "),
    "police.clear": ("取消这个条件", "remove this filter"),
    # The entry log export's columns (pages_police.EXPORT_COLUMNS).
    "export.ts": ("时间", "time"),
    "export.door": ("门", "door"),
    "export.result": ("结果", "result"),
    "export.reason": ("原因", "reason"),
    "export.room": ("房间", "room"),
    "export.name": ("姓名", "name"),
    "export.id_number": ("身份证号（部分隐藏）", "ID number (masked)"),
    "export.card": ("卡号", "card"),
    "export.snapshot_sha256": ("抓拍校验码", "snapshot SHA-256"),
    "export.event_id": ("事件编号", "event id"),
    "export.seq": ("序号", "seq"),
    "audit.who": ("用户", "User"),
    "audit.action": ("操作", "Action"),
    "audit.records": ("条数", "Records"),
    "audit.from": ("来源", "From"),
    "audit.outcome": ("导出结果", "Export outcome"),
    "audit.finished": ("已完成", "finished"),
    "audit.cut": ("已中断（下载未完成）", "cut off (the download ended early)"),
    "audit.unfinished": ("未完成/中断", "unfinished/interrupted"),
    "audit.end_of": ("结束导出 #%s", "ends export #%s"),
    "audit.chain_ok": ("审计链完整", "Hash chain intact"),
    "audit.chain_broken": ("审计链已被篡改", "Hash chain BROKEN"),
    # Why a police input was refused, by the field at fault (gateway/web/police_filters.py).
    "invalid.purpose": (
        "请填写事由（案件编号）：1 至 200 个字符，须有可见文字，不含控制字符",
        "Give the purpose (case number): 1 to 200 characters, something visible, no control"
        " characters",
    ),
    "invalid.card": (
        "卡号须为 0 至 4294967295 之间的数字，最多 10 位",
        "Card: a number from 0 to 4294967295, at most 10 digits",
    ),
    "invalid.room": (
        "房间号须为 1 至 32 个字符，不含控制字符",
        "Room: 1 to 32 characters, no control characters",
    ),
    "invalid.door": (
        "门的名称只含小写字母、数字、- 和 _，最多 32 个字符",
        "Door: a door's name, lower-case letters, digits, - and _, at most 32 characters",
    ),
    "invalid.tenant_id": (
        "住户编号无效（应为本系统的住户编号）",
        "Tenant: not a tenant id of this gateway (a lower-case UUID)",
    ),
    "invalid.since": (
        "开始时间格式应如 2026-03-01T08:00，且在 1970 至 2099 年之间",
        "From: a time such as 2026-03-01T08:00, between 1970 and 2099",
    ),
    "invalid.until": (
        "结束时间格式应如 2026-03-01T08:00，在 1970 至 2099 年之间，且晚于开始时间",
        "Until: a time such as 2026-03-01T08:00, between 1970 and 2099, after From",
    ),
    "invalid.result": ("结果只能是准许或拒绝", "Result: granted or denied"),
    "invalid.limit": ("每页条数须为 1 至 500", "Limit: 1 to 500 per page"),
    "invalid.cursor": ("翻页位置无效，请重新查询", "Not a page of this search: search again"),
    "invalid.before": ("审计日志的翻页位置无效", "Not a position in the audit log"),
    "diag.readers": ("读卡器", "Readers"),
    "diag.camera": ("摄像头", "Camera"),
    "diag.uplink": ("上传", "Uplink"),
    "diag.queue": ("待上传事件", "Events waiting to go up"),
    "diag.disk": ("磁盘剩余", "Disk free"),
    "diag.clock": ("时钟已同步", "Clock synchronised"),
    "diag.errors": ("线路错误", "Line errors"),
    "diag.health": ("运行状况", "Health"),
    "diag.all_well": ("一切正常", "All well"),
    "common.yes": ("是", "yes"),
    "common.no": ("否", "no"),
    "common.back": ("返回", "Back"),
    # Why a value was refused, by its key (ValidationError.code: gateway/store/validation.py,
    # web_security/passwords.py, the store's conflicts); the English is the refusal's own text.
    "refusal.required": ("必须填写", validation.REFUSALS["required"]),
    "refusal.too_long": ("不能超过 {max} 个字", validation.REFUSALS["too_long"]),
    "refusal.other_digits": (
        "请用半角数字 0-9 输入，不要用全角数字或其他文字的数字",
        validation.REFUSALS["other_digits"],
    ),
    "refusal.invisible": (
        "含有看不见的字符或改变文字方向的字符，请重新输入",
        validation.REFUSALS["invisible"],
    ),
    "refusal.not_text": ("没有可见的文字或数字", validation.REFUSALS["not_text"]),
    "refusal.replacement": (
        "含有乱码字符 \ufffd（编码错误时丢失的字），请重新输入",
        validation.REFUSALS["replacement"],
    ),
    "refusal.name_formula": (
        "不能以 =、+、- 或 @ 开头（电子表格会把它当作公式执行）",
        validation.REFUSALS["name_formula"],
    ),
    "refusal.room_formula": (
        "不能以 =、+ 或 @ 开头；以 - 开头只用于地下楼层，如 -1 或 -1-02"
        "（电子表格会把它当作公式执行）",
        validation.REFUSALS["room_formula"],
    ),
    "refusal.excel_rounded": (
        "像是被 Excel 改成科学计数法的数字；请把这一列设为“文本”格式后重新填写",
        validation.REFUSALS["excel_rounded"],
    ),
    "refusal.id_length": ("应为 18 位，现在是 {length} 位", validation.REFUSALS["id_length"]),
    "refusal.id_shape": (
        "应为 17 位数字，最后一位是数字或 X",
        validation.REFUSALS["id_shape"],
    ),
    "refusal.id_birth_date": (
        "其中的出生日期 {birth} 不是真实的日期，请核对",
        validation.REFUSALS["id_birth_date"],
    ),
    "refusal.id_check_digit": (
        "最后一位校验码不对（按前 17 位应为 {expected}），请核对是否输错",
        validation.REFUSALS["id_check_digit"],
    ),
    "refusal.phone_shape": (
        "应为以 1 开头的 11 位手机号码",
        validation.REFUSALS["phone_shape"],
    ),
    "refusal.ends_before_start": (
        "租期结束（{valid_until}）早于租期开始（{valid_from}）",
        validation.REFUSALS["ends_before_start"],
    ),
    "refusal.card_range": (
        "卡号应在 0 到 {max} 之间，现在是 {value}",
        validation.REFUSALS["card_range"],
    ),
    "refusal.card_not_digits": (
        "{typed} 不是卡号：卡号只能是数字",
        validation.REFUSALS["card_not_digits"],
    ),
    "refusal.card_excel": (
        "{typed} 不是卡号：被 Excel 改成了科学计数法，请把这一列设为“文本”格式",
        validation.REFUSALS["card_excel"],
    ),
    "refusal.card_too_big": (
        "{shown} 超过了最大卡号 {max}",
        validation.REFUSALS["card_too_big"],
    ),
    "refusal.pin_shape": ("应为 4 到 8 位数字", validation.REFUSALS["pin_shape"]),
    "refusal.date_shape": (
        "{typed} 不是日期，请按 2026-12-07 的格式填写",
        validation.REFUSALS["date_shape"],
    ),
    "refusal.not_a_date": ("{typed} 不是真实的日期", validation.REFUSALS["not_a_date"]),
    "refusal.card_twice": ("卡 {number} 填了两次", validation.REFUSALS["card_twice"]),
    "refusal.not_a_number": ("应为整数", validation.REFUSALS["not_a_number"]),
    "refusal.not_valid": ("填写的内容不对", validation.REFUSALS["not_valid"]),
    "refusal.no_such_room": (
        "本楼没有 {room} 房（请先登记该房的住户）",
        validation.REFUSALS["no_such_room"],
    ),
    "refusal.username_shape": (
        "应为 2 到 64 个字母、数字或 _.@-，以字母或数字开头",
        "must be 2-64 letters, digits or _.@- and start with a letter or digit",
    ),
    "refusal.username_taken": ("这个用户名已经有人用了", "this username is taken"),
    "refusal.card_taken": (
        "卡 {number} 已属于另一位住户（{room} 房，这张卡{status}）",
        "card {number} belongs to another tenant (room {room}, card {status})",
    ),
    "refusal.card_cancelled": (
        "卡 {number} 已注销，不能再使用",
        "card {number} is cancelled for good",
    ),
    "refusal.extend_not_later": (
        "延期后的日期（{typed}）应晚于现在的租期结束（{valid_until}）",
        validation.REFUSALS["extend_not_later"],
    ),
    "refusal.no_such_door": (
        "本楼没有“{door}”这个门，请从列表中选择",
        "the building has no door {door}; pick one from the list",
    ),
    "refusal.id_number_taken": (
        "已有住户登记了这个身份证号",
        "a tenant with this ID number is already registered",
    ),
    # The CSV import's refusals (gateway/tenant_csv.py), by their keys too.
    "refusal.file_too_large": (
        "文件超过 {max} 字节，太大了",
        tenant_csv.REFUSALS["file_too_large"],
    ),
    "refusal.utf16": (
        "是 UTF-16 文件（“Unicode 文本”）；请另存为“CSV UTF-8”或“CSV”",
        tenant_csv.REFUSALS["utf16"],
    ),
    "refusal.utf8_damaged": (
        "是 UTF-8 文件，但此处有无效字节",
        tenant_csv.REFUSALS["utf8_damaged"],
    ),
    "refusal.utf8_then_other": (
        "此行不是 UTF-8 编码，与上面的行不同（混入了 GB18030 文字，或有损坏的字节）；"
        "请把整个文件重新另存为“CSV UTF-8”",
        tenant_csv.REFUSALS["utf8_then_other"],
    ),
    "refusal.gb18030_then_utf8": (
        "此行是 UTF-8 编码，与上面的行（GB18030）不同；请把整个文件重新另存为“CSV UTF-8”",
        tenant_csv.REFUSALS["gb18030_then_utf8"],
    ),
    "refusal.undecodable": (
        "既不是 UTF-8 也不是 GB18030（此处有无法识别的字节）",
        tenant_csv.REFUSALS["undecodable"],
    ),
    "refusal.empty_file": ("是空文件；第一行应为表头", tenant_csv.REFUSALS["empty_file"]),
    "refusal.not_csv": ("不是有效的 CSV（多半是引号没有配对）", tenant_csv.REFUSALS["not_csv"]),
    "refusal.missing_column": ("缺少“{column}”这一列", tenant_csv.REFUSALS["missing_column"]),
    "refusal.unknown_column": (
        "不认识“{typed}”这一列；表头应为：房间,姓名,身份证号,手机,卡号,租期开始,租期结束",
        tenant_csv.REFUSALS["unknown_column"],
    ),
    "refusal.column_twice": ("“{column}”这一列出现了两次", tenant_csv.REFUSALS["column_twice"]),
    "refusal.field_count": (
        "有 {count} 个格子，表头有 {columns} 列",
        tenant_csv.REFUSALS["field_count"],
    ),
    "refusal.same_id_number": (
        "同一个身份证号已在第 {earlier} 行",
        tenant_csv.REFUSALS["same_id_number"],
    ),
    "refusal.same_card": (
        "卡 {number} 已在第 {earlier} 行",
        tenant_csv.REFUSALS["same_card"],
    ),
    # nginx's own answers (gateway/web/edge.py): plain text, both languages at once.
    "edge.too_large": ("上传的内容太大，未被接收", "What was sent is too large and was refused"),
    "edge.busy": ("网关正忙，请稍后再试", "The gateway is busy; try again in a moment"),
    "edge.unavailable": (
        "网关正在启动或重启，请稍后再试",
        "The gateway is starting or restarting; try again in a moment",
    ),
}

# The field a message names, in the page's words.
FIELDS = {
    "name": "tenant.name",
    "room": "tenant.room",
    "phone": "tenant.phone",
    "id_number": "tenant.id_number",
    "card": "card.number",
    "number": "card.number",
    "valid_from": "tenant.valid_from",
    "valid_until": "tenant.valid_until",
    "password": "login.password",
    "new": "password.new",
    "username": "login.username",
    "visited": "visitor.visiting",
    "file": "import.the_file",
    "header": "import.header",
    "row": "import.row",
    "door": "police.door",
}
# Refusals that name their field in their own words already.
_SELF_NAMED = frozenset({"ends_before_start", "card_taken", "card_cancelled", "extend_not_later"})
# Parameters that are codes themselves, shown in the page's words.
_CODED_PARAMS: dict[str, Callable[[object, Lang], str]] = {
    "status": lambda value, lang: word(f"card.{value}", lang),
    "column": lambda value, lang: word(FIELDS[str(value)], lang) if value in FIELDS else str(value),
}


class Refused(Protocol):
    """A refusal with a key: ValidationError, Conflict, RowError."""

    @property
    def code(self) -> str | None: ...
    @property
    def params(self) -> dict[str, object]: ...


WORDS.update(words.WORDS)  # the login's, the password page's, web_security's refusals
WORDS.update({f"health.{code}": pair for code, pair in findings.WORDS.items()})
WORDS.update({f"provision.{key}": pair for key, pair in provision_report.WORDS.items()})


def word(key: str, lang: Lang) -> str:
    """The text for `key` in `lang`; the key itself if it is missing (and tests fail)."""
    pair = WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def door_label(name: str | None, labels: Mapping[str, str | None], lang: Lang) -> str:
    """What the page calls door `name`: its configured label, else the word for a usual name
    (main -> 正门), else the name as configured.

    >>> door_label("main", {"main": None}, "zh"), door_label("n2", {"n2": "北门"}, "zh")
    ('正门', '北门')
    """
    if not name:
        return ""
    return labels.get(name) or (word(f"door.{name}", lang) if f"door.{name}" in WORDS else name)


def explain(item: str | Exception | Refused, lang: Lang, field: str | None = None) -> str:
    """Why something was refused, in `lang`.

    A refusal with a key (`code`, `params`) is said in the table's words, after the name of
    the field at fault (`field`, else the refusal's own); anything else as it is.

    >>> explain(validation.refusal("room", "not_text"), "zh")
    '房间：没有可见的文字或数字'
    """
    code = getattr(item, "code", None)
    if code is None or f"refusal.{code}" not in WORDS:
        message = getattr(item, "message", None)
        said = message if isinstance(message, str) else str(item)
    else:
        params = dict(getattr(item, "params", {}))
        for name, say in _CODED_PARAMS.items():
            if name in params:
                params[name] = say(params[name], lang)
        said = word(f"refusal.{code}", lang).format(**params)
    field = field if field is not None else getattr(item, "field", None)
    if not field or code in _SELF_NAMED:
        return said
    name = word(FIELDS[field], lang) if field in FIELDS else field
    return f"{name}：{said}" if lang == "zh" else f"{name}: {said}"


def form_refusals(details: list[dict[str, Any]]) -> list[ValidationError]:
    """FastAPI's own refusals of a form (lengths, missing fields, numbers) as keyed refusals,
    so a page says them in its words: "卡号：不能超过 10 个字", not pydantic's English."""
    refused = []
    for detail in details:
        field = str(detail["loc"][-1]) if detail.get("loc") else ""
        kind, context = detail.get("type", ""), detail.get("ctx") or {}
        if kind == "string_too_long":
            refused.append(validation.refusal(field, "too_long", max=context.get("max_length")))
        elif kind in ("missing", "string_too_short"):
            refused.append(validation.refusal(field, "required"))
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            refused.append(validation.refusal(field, "not_a_number"))
        else:
            refused.append(validation.refusal(field, "not_valid"))
    return refused
