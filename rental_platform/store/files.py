"""Files written whole or not at all: the store key and the pictures."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def publish(path: Path, data: bytes, mode: int, *, replace: bool) -> bool:
    """Write `data` to `path` durably: a temporary file (`mode`), fsynced, then renamed into
    place (`replace`) or linked only if `path` does not exist yet; the folder fsynced.

    Another process sees no file or a whole one, never a part. True if this call put it there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    placed = True
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        placed = False  # another process was first: its file is the one everybody uses
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return placed
