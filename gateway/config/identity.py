"""[gateway] and [building]: which gateway this is, and which building it guards."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from gateway.config.base import BUILDING_CODE_PATTERN, GATEWAY_ID_PATTERN, Section
from gateway.config.errors import invalid
from gateway.config.files import ResolvedPath


class GatewayConfig(Section):
    """Who this gateway is, where it keeps its data, and the local time zone."""

    id: str = Field(
        pattern=GATEWAY_ID_PATTERN,
        title="Gateway id",
        description="Unique in the city; part of every MQTT topic and event. 3 to 64 lowercase"
        " letters, digits or dashes.",
        examples=["gw-440305-0042"],
    )
    data_dir: ResolvedPath = Field(
        default=Path("/var/lib/rental-gateway"),
        title="Data folder",
        description="Where the journal, tenant registry and snapshots are kept. Relative to the"
        " config file's folder.",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        title="Time zone",
        description="IANA time zone name used for validity dates and local times on the page.",
    )

    @field_validator("id")
    @classmethod
    def _not_a_platform_identity(cls, value: str) -> str:
        # The broker's ACL patterns apply to every user; a gateway named like a platform
        # identity would be granted the platform's topics (configs/mosquitto/acl).
        if value == "platform" or value.startswith("rental-platform"):
            raise invalid(f'"{value}" is reserved for the city platform; choose a gateway id')
        return value

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise invalid(
                f'"{value}" is not a known IANA time zone; use a name such as "Asia/Shanghai"'
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The time zone as a `ZoneInfo`."""
        return ZoneInfo(self.timezone)


class BuildingConfig(Section):
    """The building this gateway guards, as registered with the city."""

    code: str = Field(
        pattern=BUILDING_CODE_PATTERN,
        max_length=40,
        title="Building code",
        description="District/street/community/building code: digits and dashes, at most 40"
        " characters.",
        examples=["440305001002-0042"],
    )
    name: str = Field(
        min_length=1,
        max_length=100,
        title="Building name",
        description="Name shown on the local page and in reports; Chinese is fine.",
        examples=["桃源村 42 栋"],
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise invalid("must not be blank")
        return value
