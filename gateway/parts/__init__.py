"""The gateway's parts, each a process of its own: door, camera, uplink, web.

They meet only in the store and the runtime folder (`runtime.py`); `run.py` runs one part or
supervises them all. See docs/architecture.md.
"""
