"""The `gateway` command as installers and building heads use it (SPEC section 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.store import Store
from tests.e2e.building import building
from tests.store.factories import id_number

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def gateway(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_check_config_exit_codes(tmp_path: Path) -> None:
    with building(tmp_path) as b:
        ok = gateway("-c", str(b.config_path), "check-config")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK: gateway gw-test-0001")
        via_env = gateway("check-config", env={"GATEWAY_CONFIG": str(b.config_path)})
        assert via_env.returncode == 0
    broken = tmp_path / "broken.toml"
    broken.write_text('[gateway]\nid = "X"\n')
    result = gateway("-c", str(broken), "check-config")
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert f"{broken}:gateway.id: " in lines[0]
    assert all(line.startswith(f"{broken}:") for line in lines)


def test_run_refuses_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    result = gateway("-c", str(broken), "run")
    assert result.returncode == 2
    assert f"{broken}:(toml):" in result.stderr


def test_run_tells_systemd_which_parts_the_config_uses(tmp_path: Path) -> None:
    """ExecCondition= of the units: 0 runs the part, 1 skips it, 255 fails the unit."""
    with building(tmp_path) as b:
        for part, expected in (("door", 0), ("web", 0), ("edge", 0), ("uplink", 1),
                               ("camera", 1)):  # fmt: skip
            done = gateway("-c", str(b.config_path), "run", "--part", part, "--configured")
            assert done.returncode == expected, (part, done.stderr)
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    # A config that does not load must fail the door's unit, not skip it quietly.
    assert gateway("-c", str(broken), "run", "--part", "door", "--configured").returncode == 255


def test_users_add(tmp_path: Path) -> None:
    with building(tmp_path) as b:
        cfg = str(b.config_path)
        added = gateway("-c", cfg, "users", "add", "--role", "police", "--password-stdin",
                        "officer-li", stdin="correct horse battery\n")
        assert added.returncode == 0, added.stderr
        generated = gateway("-c", cfg, "users", "add", "--role", "building_head", "head-wang")
        assert generated.returncode == 0, generated.stderr
        password = generated.stdout.split("one-time password: ")[1].strip()
        duplicate = gateway("-c", cfg, "users", "add", "--role", "police", "--password-stdin",
                            "officer-li", stdin="another long password\n")
        assert duplicate.returncode == 2
        weak = gateway("-c", cfg, "users", "add", "--role", "police", "--password-stdin",
                       "officer-zhao", stdin="short\n")
        assert weak.returncode == 2
        assert "password" in weak.stderr
        bad_role = gateway("-c", cfg, "users", "add", "--role", "admin", "x")
        assert bad_role.returncode == 2
        with Store.open(b.data_dir, "gw-test-0001") as store:
            assert store.verify_user("officer-li", "correct horse battery") is not None
            assert store.verify_user("head-wang", password) is not None
            assert store.verify_user("officer-zhao", "short") is None


def test_tenants_import_all_or_nothing(tmp_path: Path) -> None:
    with building(tmp_path) as b:
        cfg = str(b.config_path)
        header = "room,name,id_number,phone,card,valid_from,valid_until\n"
        good = (f"A801,赵六,{id_number(601)},13811112222,7000001;7000002,2026-01-01,2027-06-30\n"
                f"A802,钱七,{id_number(602)},13811113333,,2026-01-01,2027-06-30\n")
        bad = tmp_path / "bad.csv"
        bad.write_text(header + good + f"A803,孙八,{id_number(603)}0,1381111,x,2026-13-01,\n",
                       encoding="utf-8")
        result = gateway("-c", cfg, "tenants", "import", str(bad))
        assert result.returncode == 2
        assert "nothing imported" in result.stderr
        assert "line 4" in result.stderr
        with Store.open(b.data_dir, "gw-test-0001") as store:
            assert store.search_tenants(room="A801") == []
        ok = tmp_path / "ok.csv"
        ok.write_bytes((header + good).encode("gb18030"))
        result = gateway("-c", cfg, "tenants", "import", str(ok))
        assert result.returncode == 0, result.stderr
        assert "2 tenant(s) added" in result.stdout
        with Store.open(b.data_dir, "gw-test-0001") as store:
            grant = store.card_lookup(7000002)
            assert grant is not None
            assert grant.room == "A801"
        missing = gateway("-c", cfg, "tenants", "import", str(tmp_path / "none.csv"))
        assert missing.returncode == 2


def test_demo_presents_cards_and_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen([*GATEWAY, "demo", "--port", "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdin is not None
    assert proc.stdout is not None
    output: list[str] = []

    def read_until(marker: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            output.append(line)
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} in:\n{''.join(output)}")

    try:
        page = read_until("网页 Web page")
        assert "http://127.0.0.1:" in page
        head = read_until("building-head")
        read_until("police")
        # The passwords are one-time, as printed: the API refuses them until changed.
        url, password = page.split()[3], head.split()[-1]
        login = httpx.post(f"{url}/api/v1/login", timeout=30,
                           json={"username": "building-head", "password": password})
        assert login.status_code == 403, login.text
        visitor = read_until("访客码 Visitor code:").split()[3]
        read_until("'q' (")
        proc.stdin.write("1\n")
        proc.stdin.flush()
        assert "张伟" in read_until("GRANTED")
        # The synthetic camera's frame, stored as JPEG, is in the event.
        assert "sha256" in read_until("📷")
        read_until("lock released for 5 s")
        proc.stdin.write("3\n")
        proc.stdin.flush()
        assert "租期已结束 lease ended" in read_until("DENIED")
        proc.stdin.write("12345\n")
        proc.stdin.flush()
        assert "未登记的卡 unknown card" in read_until("DENIED")
        proc.stdin.write(f"{visitor}#\n")  # the visitor code, typed at the keypad
        proc.stdin.flush()
        assert "访客码 visitor code" in read_until("GRANTED")
        proc.stdin.write("000000#\n")
        proc.stdin.flush()
        assert "无效的访客码 unknown visitor code" in read_until("DENIED")
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, "".join(output) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
