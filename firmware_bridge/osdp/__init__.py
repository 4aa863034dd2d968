"""An OSDP control panel (CP) over pyserial, for door readers; see docs/osdp.md.

>>> from firmware_bridge.osdp import ControlPanel, ReaderSpec
>>> cp = ControlPanel(port="/dev/ttyUSB0", baud=9600, readers=[ReaderSpec(address=1)])
"""

from .events import (
    CardRead,
    Event,
    InputChanged,
    KeypadInput,
    PowerChanged,
    ReaderOffline,
    ReaderOnline,
    ReaderStatus,
    SecureChannelFailed,
    TamperChanged,
)
from .messages import Capability, ComSettings, LedColor, OutputControl, PdId
from .panel import ControlPanel, ReaderSpec
from .reader import BusTiming

__all__ = [
    "BusTiming",
    "Capability",
    "CardRead",
    "ComSettings",
    "ControlPanel",
    "Event",
    "InputChanged",
    "KeypadInput",
    "LedColor",
    "OutputControl",
    "PdId",
    "PowerChanged",
    "ReaderOffline",
    "ReaderOnline",
    "ReaderSpec",
    "ReaderStatus",
    "SecureChannelFailed",
    "TamperChanged",
]
