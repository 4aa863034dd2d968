"""The gateway's configuration: typed sections loaded from one TOML file.

from gateway.config import load_config
config = load_config("/etc/rental-gateway/gateway.toml")   # raises ConfigError
"""

from gateway.config.errors import ConfigError, Problem
from gateway.config.loader import (
    DEFAULT_CONFIG_PATH,
    check_config_main,
    default_config_path,
    load_config,
    summary,
    validate_config,
)
from gateway.config.models import (
    BuildingConfig,
    BusConfig,
    CameraConfig,
    Config,
    DoorConfig,
    GatewayConfig,
    MqttConfig,
    WebConfig,
)
from gateway.config.reference import json_schema

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BuildingConfig",
    "BusConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "DoorConfig",
    "GatewayConfig",
    "MqttConfig",
    "Problem",
    "WebConfig",
    "check_config_main",
    "default_config_path",
    "json_schema",
    "load_config",
    "summary",
    "validate_config",
]
