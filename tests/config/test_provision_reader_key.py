"""A reader key file that is not the 32 hex characters provisioning wrote is a failed step."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.provision import _reader_key
from gateway.provision_report import Report


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00binary garbage\n", b"not hex at all\n", b"00" * 15 + b"\n", b"\0" * 100_000],
)
def test_a_bad_reader_key_file_fails_its_step_and_is_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "reader-main.key"
    path.write_bytes(content)
    report = Report()
    _reader_key(report, path)
    [step] = report.steps
    assert step.failed
    assert "not 32 hex characters" in step.line("en")
    assert "不是 32 个十六进制字符" in step.line("zh")
    assert path.read_bytes() == content  # the installer decides; nothing is overwritten


def test_a_good_reader_key_file_is_used_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "reader-main.key"
    path.write_text("00112233445566778899aabbccddeeff\n")
    report = Report()
    assert _reader_key(report, path) == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert [s.status for s in report.steps] == ["unchanged"]
