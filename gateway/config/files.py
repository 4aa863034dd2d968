"""Path fields of the config: resolved beside the config file, and files checked readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, BinaryIO

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from gateway.config.errors import invalid, show


def config_dir(info: ValidationInfo) -> Path:
    """Return the folder of the config file being validated, or the working folder."""
    context = info.context if isinstance(info.context, dict) else {}
    return Path(context.get("base_dir") or Path.cwd())


# Secrets under systemd: `LoadCredential=keys:/etc/rental-gateway/keys` hands every file of
# that folder to the service as credential keys_FILE, readable by it alone.
CREDENTIAL = "credential:"
CREDENTIAL_PREFIX = "keys_"


def credential_path(name: str, info: ValidationInfo) -> Path:
    """Where `credential:NAME` is: the service's credential, or else the keys folder beside
    the config (the same file, for `check-config` and `provision` run by the installer)."""
    if not name or "/" in name or name.startswith("."):
        raise invalid(f'"{CREDENTIAL}{name}" must name a file of the keys folder, like'
                      f' "{CREDENTIAL}mqtt-client.key"')  # fmt: skip
    loaded = os.environ.get("CREDENTIALS_DIRECTORY")
    if loaded:
        return Path(loaded) / f"{CREDENTIAL_PREFIX}{name}"
    return Path(os.path.abspath(config_dir(info) / "keys" / name))


def resolve_path(value: object, info: ValidationInfo) -> Path:
    """Turn a path string into an absolute `Path`, relative ones taken from the config's folder.

    `credential:NAME` is the file NAME of the keys folder, handed over by systemd (see
    `credential_path`).
    """
    if isinstance(value, str):
        if not value.strip():
            raise invalid("must not be empty; give a path or remove the key")
        if value.startswith(CREDENTIAL):
            return credential_path(value.removeprefix(CREDENTIAL), info)
        value = Path(value)
    if isinstance(value, Path):
        # abspath, not resolve(): keep the names the installer wrote, symlinks included.
        return Path(os.path.abspath(config_dir(info) / value))
    raise invalid(f"must be a path in quotes, not {show(value)}")


# Keys, certificates and CA bundles are kilobytes: a path that names something bigger (or
# endless, such as /dev/zero) is the wrong path, refused before it is read whole.
MAX_FILE_BYTES = 1 << 20


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Return the bytes of the regular file at `path` (at most `limit`), or raise a validation
    error saying why not."""
    with _open_regular(path) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise invalid(f"{path} is larger than {limit // 1024} KiB: not a key or certificate;"
                      " check the path")  # fmt: skip
    return data


def check_readable(path: Path) -> Path:
    """`path` if it is a regular file the gateway can read now (its first byte is read)."""
    with _open_regular(path) as file:
        file.read(1)
    return path


def _open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; never blocks (a FIFO, a device) or opens a folder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise invalid(f"file not found: {path}") from None
    except PermissionError:
        raise invalid(
            f"cannot read {path}: permission denied; let the gateway's user read it"
        ) from None
    except OSError as error:
        raise invalid(f"cannot read {path}: {error.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise invalid(f"{path} is a folder; give the path of a file")
        raise invalid(f"{path} is not a regular file (a device or a pipe); give the path of a file")
    return os.fdopen(fd, "rb")


def _check_small_file(path: Path) -> Path:
    read_file(path)  # certificates and keys are a few kilobytes: reading proves access
    return path


ResolvedPath = Annotated[Path, BeforeValidator(resolve_path)]
"""A path; relative ones are relative to the config file's folder."""

ReadableFile = Annotated[Path, BeforeValidator(resolve_path), AfterValidator(_check_small_file)]
"""A path to a file the gateway can read now, relative ones as for `ResolvedPath`."""
