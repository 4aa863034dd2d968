"""Path fields of the config: resolved beside the config file, and files checked readable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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


def read_file(path: Path) -> bytes:
    """Return the bytes of the file at `path`, or raise a validation error saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise invalid(f"file not found: {path}") from None
    except IsADirectoryError:
        raise invalid(f"{path} is a folder; give the path of a file") from None
    except PermissionError:
        raise invalid(
            f"cannot read {path}: permission denied; let the gateway's user read it"
        ) from None
    except OSError as error:
        raise invalid(f"cannot read {path}: {error.strerror}") from None


def _check_readable(path: Path) -> Path:
    read_file(path)  # certificates and keys are a few kilobytes: reading proves access
    return path


ResolvedPath = Annotated[Path, BeforeValidator(resolve_path)]
"""A path; relative ones are relative to the config file's folder."""

ReadableFile = Annotated[Path, BeforeValidator(resolve_path), AfterValidator(_check_readable)]
"""A path to a file the gateway can read now, relative ones as for `ResolvedPath`."""
