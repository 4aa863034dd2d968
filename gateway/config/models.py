"""The whole configuration: `Config`, made of one frozen, strictly typed model per section.

Titles and descriptions of the fields are the reference: they feed
`configs/gateway.schema.json` and `docs/config.md`.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from gateway.config.camera import CameraConfig
from gateway.config.crosscheck import cross_check
from gateway.config.doors import BusConfig, DoorConfig
from gateway.config.identity import BuildingConfig, GatewayConfig
from gateway.config.mqtt import MqttConfig
from gateway.config.web import WebConfig

__all__ = [
    "BuildingConfig",
    "BusConfig",
    "CameraConfig",
    "Config",
    "DoorConfig",
    "GatewayConfig",
    "MqttConfig",
    "WebConfig",
]


class Config(BaseModel):
    """A whole gateway configuration, as read from its TOML file by `load_config`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, title="Rental gateway configuration"
    )

    gateway: GatewayConfig = Field(title="[gateway]", description="This gateway.")
    building: BuildingConfig = Field(title="[building]", description="The building.")
    # strict=False on the lists only: TOML arrays arrive as lists; entries stay strict.
    buses: tuple[BusConfig, ...] = Field(
        alias="bus",
        strict=False,
        min_length=1,
        title="[[bus]]",
        description="Serial lines to the readers; at least one.",
    )
    doors: tuple[DoorConfig, ...] = Field(
        strict=False, min_length=1, title="[[doors]]", description="The doors; at least one."
    )
    mqtt: MqttConfig | None = Field(
        default=None, title="[mqtt]", description="Uplink to the city; optional."
    )
    camera: CameraConfig | None = Field(
        default=None, title="[camera]", description="Entry camera; optional."
    )
    web: WebConfig = Field(
        default_factory=WebConfig, title="[web]", description="Local web page; optional."
    )

    @model_validator(mode="after")
    def _entries_agree(self) -> Self:
        # load_config reports these per key from the TOML data; this guards configs built in code.
        problems = cross_check(self.model_dump(by_alias=True))
        if problems:
            raise PydanticCustomError(
                "cross_check", "{problems}", {"problems": "; ".join(": ".join(p) for p in problems)}
            )
        return self

    def door(self, name: str) -> DoorConfig:
        """Return the door called `name`; KeyError when there is none."""
        for door in self.doors:
            if door.name == name:
                return door
        raise KeyError(name)

    def bus(self, name: str) -> BusConfig:
        """Return the bus called `name`; KeyError when there is none."""
        for bus in self.buses:
            if bus.name == name:
                return bus
        raise KeyError(name)
