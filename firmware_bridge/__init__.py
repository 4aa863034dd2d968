"""OSDP and other serial protocols of door hardware; importable without the gateway."""
