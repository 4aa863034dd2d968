"""Reading the TOML file: `load_config` for the service, `check_config_main` for installers."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from gateway.config.crosscheck import cross_check
from gateway.config.errors import ConfigError, Problem
from gateway.config.messages import describe
from gateway.config.models import Config

DEFAULT_CONFIG_PATH = Path("/etc/rental-gateway/gateway.toml")


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Return the config path used without `-c`: `$GATEWAY_CONFIG`, else the system one."""
    return Path(environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at `path`; raise ConfigError listing every problem.

        config = load_config("/etc/rental-gateway/gateway.toml")
        config.door("main").address

    Relative paths in the file are taken from the file's folder and returned absolute.
    """
    shown = str(path)
    data = _read_toml(Path(path), shown)
    return validate_config(data, base_dir=Path(os.path.abspath(path)).parent, source=shown)


def validate_config(
    data: Mapping[str, object], *, base_dir: Path, source: str = "<config>"
) -> Config:
    """Validate data shaped like the TOML file; raise ConfigError listing every problem.

    For code that builds a config without a file. Relative paths are taken from `base_dir`;
    problems name `source` as their path.
    """
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        found = sorted(describe(error) + cross_check(data), key=_by_entry)
        raise ConfigError([Problem(source, key, message) for key, message in found]) from None


def check_config_main(path: str | os.PathLike[str]) -> int:
    """Check the config at `path` for `gateway check-config`: print the verdict, return exit code.

    Prints one `PATH:dotted.key: message` line per problem and returns 2, or prints a
    one-line summary and returns 0.
    """
    try:
        config = load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem)
        return 2
    print(summary(config))
    return 0


def summary(config: Config) -> str:
    """Describe a valid config in one line, for an installer to confirm what will run."""
    mqtt, web, building = config.mqtt, config.web, config.building
    parts = [
        f"{_count(len(config.doors), 'door', 'doors')} on"
        f" {_count(len(config.buses), 'bus', 'buses')}",
        "no MQTT uplink"
        if mqtt is None
        else f"MQTT to {mqtt.host}:{mqtt.port}{' over TLS' if mqtt.tls else ''}",
        "camera" if config.camera is not None else "no camera",
        f"web page on {'https' if web.tls else 'http'}://{_url_host(web.host)}:{web.port}",
    ]
    return f"OK: gateway {config.gateway.id} (building {building.code} {building.name}): " + (
        ", ".join(parts)
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


_SECTIONS = [field.alias or name for name, field in Config.model_fields.items()]


def _by_entry(problem: tuple[str, str]) -> tuple[int, int]:
    """Sort key that groups problems by section, then by [[list]] entry, keeping their order."""
    section, _, rest = problem[0].partition(".")
    index = rest.partition(".")[0]
    rank = _SECTIONS.index(section) if section in _SECTIONS else len(_SECTIONS)
    return rank, int(index) if index.isdigit() else -1


def _read_toml(path: Path, shown: str) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError([Problem(shown, "(file)", _unreadable(error))]) from None
    try:
        # utf-8-sig: Windows editors put a byte-order mark that TOML itself does not allow.
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        message = f"line {line} is not UTF-8 text; save the file as UTF-8, not GBK or GB18030"
    except tomllib.TOMLDecodeError as error:
        message = f"not valid TOML: {error}"
    raise ConfigError([Problem(shown, "(toml)", message)])


def _unreadable(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, IsADirectoryError):
        return "is a folder; give the path of the config file"
    if isinstance(error, PermissionError):
        return "permission denied; run as a user that can read it"
    return f"cannot read: {error.strerror}"
