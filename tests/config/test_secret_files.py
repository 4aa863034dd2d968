"""`check-config` says where a key file is wrong, never what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import check_config_main
from tests.config.support import MINIMAL, SCBK_HEX, write

# What /etc/shadow looks like; the test must not need root to read the real one.
SHADOW = "root:$y$j9T$Zq4v0sGk1Xb8$e7Xy3.Lq9n1:19800:0:99999:7:::\n"


@pytest.mark.parametrize(
    "content",
    [
        SHADOW,
        SCBK_HEX[:20] + "zq" + SCBK_HEX[22:],  # a real key with one slip
        "password=Hunter2!\n",
    ],
)
def test_a_wrong_key_file_is_reported_without_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(content, encoding="utf-8")
    config = write(tmp_path, MINIMAL + f'scbk_file = "{secret}"\n')

    assert check_config_main(config) == 2

    out, err = capsys.readouterr()
    assert str(secret) in out  # the installer still learns which file and key
    assert "doors.0.scbk_file" in out
    report = (out + err).replace(str(tmp_path), "")
    for char in set(content):  # no character quoted, as the first bad one used to be
        assert repr(char) not in report, (char, report)
    for start in range(len(content) - 3):  # and no run of the file's text
        assert content[start : start + 4] not in report, (content[start : start + 4], report)
