"""The gateway's local web service."""
