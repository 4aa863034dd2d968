"""The building's door gateway: configuration, store, access decisions, door logic, CLI."""

__version__ = "0.1.0"
