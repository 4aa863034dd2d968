"""OSDP secure channel key files: read once at load, 32 hex characters, never a known key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.config.support import MINIMAL, SCBK_HEX, problems, write

HOW = "; make one with `openssl rand -hex 16 > FILE`"
NOT_HEX = "must hold 32 hex characters, but"
UNSHOWN = " (the file is not shown: it holds a secret)"


def with_key_file(folder: Path, content: str | bytes | None, name: str = "main.scbk") -> Path:
    """Write a config whose door uses keys/NAME holding `content` (None: no file)."""
    keys = folder / "keys"
    keys.mkdir(exist_ok=True)
    if isinstance(content, str):
        (keys / name).write_text(content, encoding="ascii", newline="")
    elif content is not None:
        (keys / name).write_bytes(content)
    return write(folder, MINIMAL + f'scbk_file = "keys/{name}"\n')


@pytest.mark.parametrize("content", [SCBK_HEX, SCBK_HEX + "\n", SCBK_HEX.upper() + "\r\n"])
def test_key_is_read_at_load(tmp_path: Path, content: str) -> None:
    door = load_config(with_key_file(tmp_path, content)).doors[0]

    assert door.scbk == bytes.fromhex(SCBK_HEX)
    assert door.scbk_file == tmp_path / "keys" / "main.scbk"


def test_key_is_kept_out_of_dumps_and_repr(tmp_path: Path) -> None:
    door = load_config(with_key_file(tmp_path, SCBK_HEX)).doors[0]

    assert "scbk" not in door.model_dump()
    assert SCBK_HEX not in repr(door)
    assert "scbk=" not in repr(door)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (SCBK_HEX[:31], "must hold 32 hex characters, but holds 31"),
        (SCBK_HEX + "0", "must hold 32 hex characters, but holds 33"),
        ("", "must hold 32 hex characters, but holds 0"),
        (SCBK_HEX[:31] + "g", f"{NOT_HEX} byte 32 is not a hex digit{UNSHOWN}"),
        (SCBK_HEX + "\n\n", f"{NOT_HEX} byte 33 is not a hex digit{UNSHOWN}"),
        (" " + SCBK_HEX, f"{NOT_HEX} byte 1 is not a hex digit{UNSHOWN}"),
        ("303132333435363738393a3b3c3d3e3f", "holds OSDP's published default key (SCBK-D)"),
        ("0" * 32, "holds a placeholder key (one byte repeated)"),
    ],
)
def test_bad_key_file(tmp_path: Path, content: str, complaint: str) -> None:
    path = with_key_file(tmp_path, content)

    assert problems(path) == [f"doors.0.scbk_file: {tmp_path}/keys/main.scbk {complaint}{HOW}"]


def test_binary_key_file(tmp_path: Path) -> None:
    assert problems(with_key_file(tmp_path, bytes(range(0xE0, 0x100)))) == [
        f"doors.0.scbk_file: {tmp_path}/keys/main.scbk must hold 32 hex characters, but byte 1"
        f" is not a hex digit{UNSHOWN}{HOW}"
    ]


def test_missing_key_file(tmp_path: Path) -> None:
    assert problems(with_key_file(tmp_path, None)) == [
        f"doors.0.scbk_file: file not found: {tmp_path}/keys/main.scbk"
    ]


def test_key_file_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "keys" / "main.scbk").mkdir(parents=True)

    assert problems(with_key_file(tmp_path, None)) == [
        f"doors.0.scbk_file: {tmp_path}/keys/main.scbk is a folder; give the path of a file"
    ]


def test_unreadable_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = with_key_file(tmp_path, SCBK_HEX)
    key_file = tmp_path / "keys" / "main.scbk"
    real_open = os.open

    def refuse_key_file(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(file) == key_file:  # chmod 000 would not stop root, who may run the tests
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_key_file)

    assert problems(path) == [
        f"doors.0.scbk_file: cannot read {tmp_path}/keys/main.scbk: permission denied;"
        " let the gateway's user read it"
    ]


def test_key_file_problems_come_with_the_door_s_other_problems(tmp_path: Path) -> None:
    path = with_key_file(tmp_path, SCBK_HEX[:31])
    path.write_text(path.read_text().replace("address = 1", "address = 200"))

    assert [line.split(":")[0] for line in problems(path)] == [
        "doors.0.address",
        "doors.0.scbk_file",
    ]


def test_key_file_with_wrong_type_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "scbk_file = 7\n")

    assert problems(path) == ["doors.0.scbk_file: must be a path in quotes, not 7"]


def test_a_credential_is_the_keys_folder_file_outside_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "main.scbk").write_text(SCBK_HEX)
    door = load_config(write(tmp_path, MINIMAL + 'scbk_file = "credential:main.scbk"\n')).doors[0]
    assert door.scbk_file == tmp_path / "keys" / "main.scbk"
    assert door.scbk == bytes.fromhex(SCBK_HEX)


def test_under_systemd_a_credential_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = tmp_path / "run-credentials"
    loaded.mkdir()
    (loaded / "keys_main.scbk").write_text(SCBK_HEX)  # LoadCredential=keys:/etc/.../keys
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(loaded))
    door = load_config(write(tmp_path, MINIMAL + 'scbk_file = "credential:main.scbk"\n')).doors[0]
    assert door.scbk_file == loaded / "keys_main.scbk"
    assert door.scbk == bytes.fromhex(SCBK_HEX)


@pytest.mark.parametrize("name", ["", "../secret.key", "sub/main.scbk", ".hidden"])
def test_a_credential_names_a_file_of_the_keys_folder_only(tmp_path: Path, name: str) -> None:
    found = problems(write(tmp_path, MINIMAL + f'scbk_file = "credential:{name}"\n'))
    assert any("must name a file of the keys folder" in p for p in found), found


def test_a_key_path_to_something_endless_or_blocking_is_refused_at_once(tmp_path: Path) -> None:
    """/dev/zero would be read forever and a FIFO would block check-config until a writer came;
    neither is a key."""
    (tmp_path / "keys").mkdir()
    os.mkfifo(tmp_path / "keys" / "pipe")
    for target in ("/dev/zero", str(tmp_path / "keys" / "pipe")):
        path = write(tmp_path, MINIMAL + f'scbk_file = "{target}"\n')
        assert problems(path) == [
            f"doors.0.scbk_file: {target} is not a regular file (a device or a pipe);"
            " give the path of a file"
        ]


def test_a_key_path_to_a_big_file_is_refused_unread(tmp_path: Path) -> None:
    path = with_key_file(tmp_path, b"0" * (2 << 20))
    assert problems(path) == [
        f"doors.0.scbk_file: {tmp_path}/keys/main.scbk is larger than 1024 KiB: not a key or"
        " certificate; check the path"
    ]
