"""`gateway demo`: a whole building without hardware, to try the gateway at a desk.

Two simulated OSDP readers (libosdp peripheral devices) share a pseudo-terminal as their RS-485
line; the main door's reader uses the secure channel. The gateway runs for real on top, as on a
Raspberry Pi: `gateway run`'s parts (door, camera, uplink, web, edge), each a process of its
own. A person types a card number or picks a tenant, the card is presented at the reader, and
the terminal shows the decision as the journal records it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TextIO
from zoneinfo import ZoneInfo

from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.camera.synthetic import SyntheticCamera
from gateway.config import Config, load_config
from gateway.parts.edge import EdgePart
from gateway.parts.run import Supervisor
from gateway.parts.runtime import Runtime
from gateway.parts.watch import JournalWatcher
from gateway.store import JournalEntry, Store, TenantCreate
from gateway.web.i18n import door_label, word

GATEWAY_ID = "gw-demo-0001"
ZONE = "Asia/Shanghai"  # the building's, for every time the demo shows
BUILDING = "桃源村 42 栋 (演示 demo)"


@dataclass(frozen=True, slots=True)
class DemoTenant:
    """A seeded tenant and the card the demo presents for them."""

    name: str
    room: str
    id_number: str
    phone: str
    card: int
    bits: int
    note: str


def _demo_tenants(today: date) -> list[DemoTenant]:
    # Made-up people; the ID numbers carry valid check digits, as the registry requires.
    return [
        DemoTenant("张伟", "301", "44030519900101123X", "13800138000", 1234567, 26, "有效 valid"),
        DemoTenant("李娜", "302", "440305198805052024", "13912345678", 3_000_000_001, 34,
                   "有效, 34 位卡 valid, 34-bit card"),
        DemoTenant("王芳", "401", "44030519751212654X", "13700001111", 2345678, 26,
                   f"租约已于 {today - timedelta(days=3)} 到期 lease expired"),
        DemoTenant("刘洋", "402", "440305199212303312", "13600002222", 3456789, 26,
                   "已暂停 suspended"),
        DemoTenant("陈静", "501", "44030520000229242X", "13500003333", 4567890, 26,
                   "卡已挂失 card reported lost"),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(folder: Path, port: str, web_port: int, main_key: bytes,
                  camera_url: str, mqtt: str = "") -> Path:
    keys = folder / "keys"
    keys.mkdir(mode=0o700)
    (keys / "main.scbk").write_text(main_key.hex() + "\n")
    (keys / "main.scbk").chmod(0o600)
    path = folder / "gateway.toml"
    path.write_text(f"""\
# Written by `gateway demo`: the same format an installer writes for a real building.
[gateway]
id = "{GATEWAY_ID}"
data_dir = "data"
timezone = "{ZONE}"

[building]
code = "440305001002-0042"
name = {json.dumps(BUILDING, ensure_ascii=False)}

[[bus]]
name = "rs485-1"
port = {json.dumps(port)}
baud = 115200
protocol = "osdp"

[[doors]]
name = "main"
bus = "rs485-1"
address = 1
relay_output = 0
contact_input = 0
unlock_seconds = 5
held_open_seconds = 30
scbk_file = "keys/main.scbk"

[[doors]]
name = "back"
bus = "rs485-1"
address = 2
relay_output = 0
unlock_seconds = 3

[camera]
source = "{camera_url}"
max_frame_age_ms = 1500
retention_days = 1

[web]
host = "127.0.0.1"
port = {web_port}
{mqtt}""")
    return path


def _seed(config: Config, tenants: list[DemoTenant], today: date) -> dict[str, str]:
    """Fill the registry, create one user per role and a visitor code; returns the secrets shown
    once: each role's one-time password and the code ("visitor_code")."""
    store = Store.open(config.gateway.data_dir, config.gateway.id)
    try:
        for t in tenants:
            valid_until = today - timedelta(days=3) if "expired" in t.note else today + timedelta(
                days=365)
            tenant = store.add_tenant(TenantCreate(
                name=t.name, id_number=t.id_number, phone=t.phone, room=t.room,
                valid_from=today - timedelta(days=400), valid_until=valid_until,
                cards=(t.card,),
            ))
            if "suspended" in t.note:
                store.set_tenant_status(tenant.id, "suspended")
            if "lost" in t.note:
                store.set_card_status(t.card, "lost")
        shown_once = {}
        for role in ("building_head", "police", "installer"):
            password = secrets.token_urlsafe(12)
            store.add_user(role.replace("_", "-"), role, password, must_change=True)
            shown_once[role] = password
        # A visitor code for the first tenant's room, to type at the prompt as at the keypad.
        issued = store.create_visitor_code(
            door=None, valid_until=datetime.now(ZoneInfo(ZONE)) + timedelta(hours=24),
            max_uses=5, created_by="building-head", room=tenants[0].room,
        )  # fmt: skip
        shown_once["visitor_code"] = issued.code
        return shown_once
    finally:
        store.close()


class _Console:
    """Prints what happens at the doors as the journal records it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.access: queue.Queue[JournalEntry] = queue.Queue()
        self.names: dict[str, str] = {}
        self._lock = threading.Lock()

    def say(self, text: str = "") -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def on_event(self, entry: JournalEntry) -> None:
        """Show every event as it is committed (on the journal watcher's thread)."""
        self.show(entry)
        if entry.body["type"].startswith("access."):
            self.access.put(entry)

    def wait_for_card(self, number: int, timeout: float) -> JournalEntry | None:
        """Return the access event for card `number`, skipping older ones."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                entry = self.access.get(timeout=remaining)
            except queue.Empty:
                break
            if entry.body.get("credential", {}).get("number") == number:
                return entry
        return None

    def show(self, entry: JournalEntry) -> None:
        body = entry.body
        kind = body["type"]
        door = body.get("door", "")
        if kind == "access.granted":
            who = self.names.get(body.get("tenant_id") or "", "")
            self.say(f"  ✔ {_both('dash.granted').upper()}  {who} {body.get('room') or ''}"
                     f" · {_door(door)}"
                     f" · {_both('reason.' + body['reason'])}  [seq {entry.seq}]"
                     f"{_snapshot_note(body)}")  # fmt: skip
        elif kind == "access.denied":
            self.say(f"  ✘ {_both('dash.denied').upper()}   {_both('reason.' + body['reason'])}"
                     f" · {_door(door)}"
                     f"  [seq {entry.seq}]{_snapshot_note(body)}")
        elif kind.startswith("camera."):
            self.say(f"  📷 {_both('event.' + kind)} ({body.get('reason', '')})  [seq {entry.seq}]")
        else:
            self.say(f"  ⚠ {_both('event.' + kind)} · {_door(door)}  [seq {entry.seq}]"
                     f"{_snapshot_note(body)}")  # fmt: skip


def _both(key: str, **values: object) -> str:
    """The page's words for `key` in both its languages, blanks filled: 未登记的卡 unknown card."""
    return f"{word(key, 'zh').format(**values)} {word(key, 'en').format(**values)}"


def _door(name: str) -> str:
    """The door as the page calls it, in both languages: 门 正门 main door."""
    return f"门 {door_label(name, {}, 'zh')} {door_label(name, {}, 'en')}"


def _snapshot_note(body: dict[str, object]) -> str:
    """Where the event's entry snapshot is, or why there is none."""
    if "snapshot" not in body:
        return ""
    snapshot = body["snapshot"]
    if isinstance(snapshot, dict):
        size, digest = snapshot["bytes"], snapshot["sha256"]
        return f"\n      📷 {_both('demo.snapshot')} {size // 1024} KB · sha256 {digest[:12]}…"
    return (f"\n      📷 {_both('police.no_snapshot')}:"
            f" {_both('snapshot.' + str(body.get('snapshot_error')))}")  # fmt: skip


def run_demo(broker: str | None = None, web_port: int = 8080, out: TextIO = sys.stdout) -> int:
    """Run the demo building until Ctrl-C (or SIGTERM); returns the exit code."""
    target = None
    if broker is not None:
        target = _parse_broker(broker)
        if target is None:
            print(f"gateway demo: --broker wants HOST:PORT, not {broker!r}", file=sys.stderr)
            return 2
    try:
        import osdp  # noqa: F401  (libosdp, for the simulated readers)
    except ImportError:
        print("gateway demo needs libosdp: pip install 'rental-gateway[demo]'", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _on_signal)
    # Ctrl-C ends the demo even when it was started with SIGINT ignored (a background job of
    # a non-interactive shell, as CI runners start things), which Python would keep.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    console = _Console(out)
    today = date.today()
    tenants = _demo_tenants(today)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(signal.signal, signal.SIGTERM, previous)
        cleanup.callback(signal.signal, signal.SIGINT, previous_int)
        cleanup.callback(stop.set)
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="gateway-demo-"))
        bus = cleanup.enter_context(SimulatedBus())
        main_key = secrets.token_bytes(16)
        readers: dict[str, SimulatedReader] = {}
        for name, reader in (("main", SimulatedReader(bus, 1, scbk=main_key)),
                             ("back", SimulatedReader(bus, 2, inputs=0))):
            readers[name] = reader.start()
            cleanup.callback(reader.stop)
        port = web_port or _free_port()
        platform: _City | None = None
        mqtt = ""
        if target is not None:
            # The city's side: the platform program of its own (`rental-platform run`), on a
            # SQLite file, signing commands with a key made for this demo.
            platform = _City(Path(tmp), *target)
            mqtt = _mqtt_section(*target, platform.public_key)
            cleanup.callback(platform.stop)
        # The building camera: a generated entrance scene with a running clock, streamed as
        # MJPEG on loopback and read exactly as a real camera's stream is.
        camera = cleanup.enter_context(SyntheticCamera(
            width=1280, height=720, fps=5, zone=ZoneInfo(ZONE)))
        config = load_config(_write_config(Path(tmp), bus.port, port, main_key, camera.url,
                                           mqtt))  # fmt: skip
        shown_once = _seed(config, tenants, today)
        log = Path(tmp) / "gateway.log"
        supervisor = Supervisor(config, Path(tmp) / "gateway.toml", log=log)
        cleanup.callback(supervisor.stop)
        store = Store.open(config.gateway.data_dir, config.gateway.id)
        cleanup.callback(store.close)
        watcher = JournalWatcher(store, after_seq=store.last_seq())
        watcher.add_listener(console.on_event)
        cleanup.callback(watcher.stop)
        try:
            supervisor.start()
            watcher.start()
            threading.Thread(target=_supervise, args=(supervisor, stop), daemon=True).start()
            _introduce(console, config, shown_once, tenants, broker, log)
            _wait_online(supervisor.runtime, config)
            for tenant in store.search_tenants(limit=100):
                console.names[tenant.id] = tenant.name
            if platform is not None:
                threading.Thread(target=_report_city, args=(console, store, stop),
                                 daemon=True).start()  # fmt: skip
            _interact(console, readers, tenants, stop, platform)
        except KeyboardInterrupt:
            stop.set()
            console.say("\n" + _both("demo.bye"))
    return 0


def _parse_broker(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def _mqtt_section(host: str, port: int, public_key: str) -> str:
    return f"""
[mqtt]
host = {json.dumps(host)}
port = {port}
tls = false
topic_prefix = "rental/v1"
command_public_key = "{public_key}"
keepalive_seconds = 10
"""


class _City:
    """`rental-platform` beside the demo building: `run` stores and acknowledges what the
    gateway sends up, `send` signs a command and waits for its result. Separate processes:
    the gateway never imports the platform."""

    def __init__(self, folder: Path, host: str, port: int) -> None:
        self._folder = folder
        self._connection = ["--host", host, "--port", str(port)]
        self._db = str(folder / "platform.db")
        self._key = folder / "signing.key"
        made = self._platform("keygen", "--out", str(self._key))
        self.public_key = made.stdout.splitlines()[0]
        self._run = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
            [sys.executable, "-m", "rental_platform", "run", *self._connection, "--db", self._db,
             "--client-id", f"rental-platform-demo-{os.getpid()}", "--stats-interval", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(folder / "platform.log").open("ab"),
        )  # fmt: skip

    def _platform(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own program, fixed arguments
            [sys.executable, "-m", "rental_platform", *args], capture_output=True, text=True,
            timeout=timeout, check=args[0] == "keygen",
        )  # fmt: skip

    def send(self, cmd: list[str], timeout: float = 15.0) -> tuple[int, str]:
        """(counter, "ok" or the gateway's refusal); TimeoutError when nothing answered."""
        done = self._platform(
            "send", *self._connection, "--db", self._db, "--signing-key", str(self._key),
            "--client-id", f"rental-platform-demo-send-{os.getpid()}",
            "--timeout", f"{timeout:g}", GATEWAY_ID, *cmd, timeout=timeout + 15,
        )  # fmt: skip
        if not done.stdout.strip():
            raise TimeoutError(done.stderr.strip().splitlines()[-1] if done.stderr else "")
        result = json.loads(done.stdout)
        return result["counter"], "ok" if result["ok"] else str(result["error"])

    def stop(self) -> None:
        self._run.terminate()
        try:
            self._run.wait(10)
        except subprocess.TimeoutExpired:
            self._run.kill()
            self._run.wait()


def _report_city(console: _Console, store: Store, stop: threading.Event) -> None:
    """Say when the city has stored and acknowledged more events (every second, on change)."""
    shown = -1
    while not stop.wait(1.0):
        acked = store.acked_seq()
        if acked != shown:
            shown = acked
            console.say(f"  ☁ {_both('demo.city_acked', acked=acked)}")


def _supervise(supervisor: Supervisor, stop: threading.Event) -> None:
    """Restart a part that died, as systemd would (try: kill the web part's pid)."""
    while not stop.wait(1.0):
        supervisor.check()


def _wait_online(runtime: Runtime, config: Config, timeout: float = 10.0) -> None:
    """Until every reader answers and the camera delivers frames (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        door = runtime.read_health("door") or {}
        camera = (runtime.read_health("camera") or {}).get("camera") or {}
        doors = door.get("doors", {})
        camera_up = config.camera is None or camera.get("online") is True
        if camera_up and doors and all(d["reader_online"] for d in doors.values()):
            return
        time.sleep(0.05)


def _introduce(console: _Console, config: Config, shown_once: dict[str, str],
               tenants: list[DemoTenant], broker: str | None, log: Path) -> None:  # fmt: skip
    say = console.say
    url = EdgePart(config, Runtime.for_config(config)).url
    say(f"{_both('demo.building')}: {BUILDING}  ({GATEWAY_ID})")
    say(f"{_both('demo.web_page')}: {url}    {_both('demo.health')}: {url}/healthz")
    say(f"{_both('demo.passwords')}:")
    for role in ("building_head", "police", "installer"):
        say(f"  {_both('demo.role.' + role)}: {_both('demo.user')} {role.replace('_', '-')}"
            f"  {shown_once[role]}")  # fmt: skip
    say(f"{_both('demo.doors')}: {_door('main')} ({_both('demo.reader')} 1,"
        f" {_both('demo.secure')}); {_door('back')} ({_both('demo.reader')} 2)")  # fmt: skip
    say(f"{_both('demo.processes')}: door, camera, uplink, web, edge (nginx);"
        f" {_both('demo.log')}: {log}")  # fmt: skip
    if config.camera is not None:
        snapshots = config.gateway.data_dir / "snapshots"
        say(f"{_both('demo.camera')}: {_both('demo.synthetic')} 1280x720 5 fps;"
            f" {_both('demo.snapshots')}: {snapshots}")  # fmt: skip
    say(f"{_both('demo.tenants')}:")
    for i, t in enumerate(tenants, 1):
        say(f"  {i}) {t.name}  {t.room}  {_both('demo.card')} {t.card:<11} {t.note}")
    if broker is not None:
        say(f"{_both('demo.broker')}: {broker} ({_both('demo.broker_does')})")
    code = shown_once["visitor_code"]
    say(f"{_both('demo.visitor')}: {code} ({_both('demo.visiting')} {tenants[0].room},"
        f" 5 {_both('demo.uses')}, 24 {_both('demo.hours')})")  # fmt: skip
    say(f"{_both('demo.type')}: 1-5 ({_both('demo.present')}), {_both('demo.card_number')},"
        f" '{code}#' ({_both('demo.keypad_code')}), 'back 1' ({_both('door.back')}),"
        f" 'open' / 'close' ({_both('demo.contact')}), 'q' ({_both('demo.quit')})")  # fmt: skip
    if broker is not None:
        say(f"  {_both('demo.city_commands')}: 'unlock' ({_both('reason.remote_unlock')}),"
            f" 'lockdown on' / 'lockdown off' ({_both('reason.lockdown')})")  # fmt: skip


def _interact(console: _Console, readers: dict[str, SimulatedReader], tenants: list[DemoTenant],
              stop: threading.Event, platform: _City | None = None) -> None:
    main = readers["main"]
    while not stop.is_set():
        console.out.write("> ")
        console.out.flush()
        line = sys.stdin.readline()
        if not line:  # standard input closed: keep the building running until a signal
            stop.wait()
            return
        words = line.split()
        if not words:
            continue
        if words[0] in ("q", "quit", "exit"):
            return
        if words[0] in ("unlock", "lockdown"):
            _city_command(console, platform, words)
            continue
        door = "main"
        if words[0] in ("back", "main") and len(words) > 1:
            door, words = words[0], words[1:]
        reader = readers[door]
        if words[0] in ("open", "close"):
            main.set_input(0, words[0] == "open")
            time.sleep(0.5)  # its event, if any, prints itself
            continue
        keys = words[0]
        if keys.endswith("#") and keys[:-1].isascii() and keys[:-1].isdigit():
            console.say(f"  {_both('demo.keypad')}: {keys} · {_door(door)}")
            reader.press_keys(keys)
            time.sleep(1.0)  # its event prints itself
            continue
        if not (words[0].isascii() and words[0].isdigit()):
            console.say(f"  ? {_both('demo.help')}: 1-5, {_both('demo.card_number')}, code#,"
                        " open, close, q")  # fmt: skip
            continue
        choice = int(words[0])
        if 1 <= choice <= len(tenants):
            tenant = tenants[choice - 1]
            number, bits = tenant.card, tenant.bits
            console.say(f"  {_both('demo.presenting')}: {tenant.name} · {_both('demo.card')}"
                        f" {number} · {_door(door)}")  # fmt: skip
        elif choice < 1 << 32:
            number, bits = choice, 26 if choice < 1 << 24 else 34
            console.say(f"  {_both('demo.presenting')}: {_both('demo.card')} {number}"
                        f" · {_door(door)}")  # fmt: skip
        else:
            console.say(f"  ? {_both('demo.too_big')}")
            continue
        reader.present_card(number, bits)
        entry = console.wait_for_card(number, timeout=10.0)
        if entry is None:
            console.say(f"    … {_both('demo.no_decision')}")
        elif entry.body["type"] == "access.granted":
            command = reader.wait_for_output(timeout=2.0)
            if command is not None:
                seconds = command.fields.get("timer_count", 0) / 10
                console.say(f"    {_both('demo.released', seconds=f'{seconds:g}')}")


def _city_command(console: _Console, platform: _City | None, words: list[str]) -> None:
    if platform is None:
        console.say(f"  ? {_both('demo.needs_broker')}: gateway demo --broker HOST:PORT")
        return
    if words[0] == "unlock":
        cmd = ["unlock", "--door", "main", "--seconds", "5"]
    elif len(words) == 2 and words[1] in ("on", "off"):
        cmd = ["lockdown", f"--{words[1]}"]
    else:
        console.say(f"  ? {_both('demo.usage')}: lockdown on | lockdown off")
        return
    try:
        counter, result = platform.send(cmd)
    except (TimeoutError, subprocess.TimeoutExpired, OSError) as exc:
        console.say(f"  ✘ {_both('demo.not_delivered')}: {exc}")
        return
    outcome = _both("demo.executed") if result == "ok" else f"{_both('demo.rejected')} ({result})"
    console.say(f"  ☁ {_both('demo.city_command')} {words[0]} #{counter}: {outcome}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo(web_port=int(os.environ.get("PORT", "8080"))))
