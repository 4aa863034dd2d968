"""[[bus]] and [[doors]]: the serial lines, and the door readers on them with their keys."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from gateway.config.base import NAME_PATTERN, Section
from gateway.config.errors import invalid
from gateway.config.files import ResolvedPath, read_file, resolve_path

BaudRate = Literal[9600, 19200, 38400, 57600, 115200, 230400]

# OSDP's default secure channel key (SCBK-D, the bytes 0x30..0x3F) is printed in the
# standard; every reader accepts it in install mode, so it protects nothing.
SCBK_D = bytes(range(0x30, 0x40))

# URL schemes pyserial's serial_for_url() opens besides plain device paths.
PYSERIAL_SCHEMES = ("loop", "socket", "rfc2217", "spy", "alt", "hwgrep", "cp2110")


class BusConfig(Section):
    """One serial line to OSDP readers: an RS-485 adapter, a UART, or a pseudo-terminal."""

    name: str = Field(
        pattern=NAME_PATTERN,
        title="Bus name",
        description="Unique name that doors use to pick this bus.",
        examples=["rs485-1"],
    )
    port: str = Field(
        title="Serial port",
        description="Absolute device path (prefer a stable /dev/serial/by-id/… name) or a"
        " pyserial URL such as loop:// or socket://host:port.",
        examples=["/dev/ttyUSB0"],
    )
    baud: BaudRate = Field(
        title="Baud rate", description="Line speed; every reader on the bus must match it."
    )
    protocol: Literal["osdp"] = Field(
        default="osdp", title="Protocol", description="Reader protocol on this line."
    )
    poll_interval_ms: int = Field(
        default=10,
        ge=0,
        le=200,
        title="Poll interval",
        description="Pause before polling the same reader again, in ms. A card waits up to this"
        " long to be fetched; shorter costs CPU on a fast reader (docs/benchmarks.md).",
    )

    @field_validator("port")
    @classmethod
    def _device_or_url(cls, value: str) -> str:
        if "://" in value:
            scheme = value.split("://", 1)[0]
            if scheme not in PYSERIAL_SCHEMES:
                known = ", ".join(f"{known}://" for known in PYSERIAL_SCHEMES)
                raise invalid(f'"{scheme}://" is not a pyserial URL; use a device path or {known}')
        elif not value.startswith("/"):
            raise invalid(
                f'"{value}" is not an absolute device path; write e.g. "/dev/ttyUSB0" or'
                ' "/dev/serial/by-id/…", or a pyserial URL such as "loop://"'
            )
        return value


class DoorConfig(Section):
    """One door: its reader on a bus, the lock relay, the door contact and timings."""

    name: str = Field(
        pattern=NAME_PATTERN,
        title="Door name",
        description="Unique name used in events, commands and the page.",
        examples=["main"],
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        title="Label",
        description="What the page calls the door, in the building's words; unset: the"
        " page's word for a usual name (main 正门, back 后门, side 侧门), else the name.",
        examples=["北门"],
    )
    bus: str = Field(title="Bus", description="Name of the [[bus]] the door's reader is on.")
    address: int = Field(
        ge=0,
        le=126,
        title="OSDP address",
        description="Address of the door's reader on its bus (0 to 126; 127 is broadcast).",
    )
    relay_output: int = Field(
        default=0, ge=0, title="Lock output", description="Reader output wired to the lock."
    )
    contact_input: int | None = Field(
        default=None,
        ge=0,
        title="Door contact input",
        description="Reader input wired to the door contact; unset means no forced or"
        " held-open alarms for this door.",
    )
    unlock_seconds: float = Field(
        default=5.0,
        ge=1,
        le=30,
        title="Unlock time",
        description="Seconds the lock stays released after a granted read.",
    )
    held_open_seconds: int = Field(
        default=60,
        ge=5,
        le=3600,
        title="Held-open alarm delay",
        description="Seconds the door may stay open before a door.held_open alarm.",
    )
    scbk_file: ResolvedPath | None = Field(
        default=None,
        title="Secure channel key file",
        description="File holding the reader's OSDP secure channel key as 32 hex characters;"
        " when set, the secure channel is required. Relative to the config file's folder.",
        examples=["keys/main.scbk"],
    )
    # The 16-byte key, read from scbk_file by the validator below while the config loads,
    # so that a bad key file is reported at doors.N.scbk_file with the door's other
    # problems. Code that builds a door without a key file sets it with
    # door.model_copy(update={"scbk": key}).
    scbk: SkipJsonSchema[bytes | None] = Field(
        default=None, validation_alias="scbk_file", exclude=True, repr=False
    )
    pin_required: bool = Field(
        default=False,
        title="PIN required",
        description="Require card and PIN, typed on this door's reader keypad.",
    )
    pin_timeout_seconds: int = Field(
        default=10,
        ge=3,
        le=60,
        title="PIN timeout",
        description="Seconds allowed to type the PIN after the card is read.",
    )

    @field_validator("scbk", mode="before")
    @classmethod
    def _read_key_file(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str | Path) or not str(value).strip():
            return None  # scbk_file reports the wrong type or the empty path
        return read_scbk(resolve_path(value, info))


def read_scbk(path: Path) -> bytes:
    """Return the 16-byte key in the file at `path`, or raise a validation error saying why not.

    The file holds exactly 32 hex characters, optionally followed by a newline.
    """
    data = read_file(path)
    hex_text = data.removesuffix(b"\n").removesuffix(b"\r").decode("latin-1")
    generate = "; make one with `openssl rand -hex 16 > FILE`"
    # Where, never what: the path may point at the wrong file (/etc/shadow, another key), and
    # check-config's output ends up in terminals, logs and support tickets.
    bad = next((n for n, char in enumerate(hex_text, 1) if char not in string.hexdigits), None)
    if bad is not None:
        raise invalid(
            f"{path} must hold 32 hex characters, but byte {bad} is not a hex digit"
            f" (the file is not shown: it holds a secret){generate}"
        )
    if len(hex_text) != 32:
        raise invalid(f"{path} must hold 32 hex characters, but holds {len(hex_text)}{generate}")
    key = bytes.fromhex(hex_text)
    if key == SCBK_D:
        raise invalid(f"{path} holds OSDP's published default key (SCBK-D){generate}")
    if len(set(key)) == 1:
        raise invalid(f"{path} holds a placeholder key (one byte repeated){generate}")
    return key
