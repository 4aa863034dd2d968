"""The platform's store: every gateway's events stored once, acks from the database.

PostgreSQL for the city, SQLite for small installs and the demo, with the same schema
(schema.py) and the same code over one small connection interface (database.py):

| module | holds |
|---|---|
| `opening.py` | `Store`, `StoreConfig`: database, store key and pictures, with their defaults |
| `database.py` | one connection (either engine), transactions, retry with back-off |
| `schema.py` | numbered migrations for both engines, applied at start under a lock |
| `messages.py` | `Incoming`, and every check a message passes before it is stored |
| `ingest.py` | `store_batch`: a batch of messages in one transaction |
| `records.py` | what a batch writes besides events: statuses, results, pictures, rejects |
| `gateways.py` | watermarks, floors, counters, building codes, conflicts' holds |
| `sealing.py` | the store key: sealed personal data, keyed lookup hashes |
| `history.py` | monthly partitions, retention, police holds |
| `snapshots.py` | pictures as content-addressed files (`SnapshotStore`) |
| `commands.py`, `reading.py` | command counters and results; reading what was stored |
| `fleet.py` | every gateway's health: its parts as events tell them, its status |
| `users.py`, `logins.py` | the city's web users; sessions and the login lockout |
| `pool.py` | `StorePool`: a few connections for the web process's threads |

The ack rule is in docs/platform.md; the events table's design is there too.
"""

from .commands import CommandRecord, command, command_sent, next_counter, record_command
from .database import Database, DatabaseDown, retrying, transient
from .gateways import gateway_row, resolve_conflict, set_building
from .history import place_hold, release_hold, upkeep
from .ingest import BatchOutcome, store_batch
from .messages import Incoming, Invalid
from .opening import Limits, Store, StoreConfig
from .reading import (
    StoredEvent,
    conflicts,
    events_for,
    latencies,
    rejects,
    snapshot_bytes,
    status_of,
    web_request,
)
from .schema import SchemaError
from .sealing import StoreKeyError

__all__ = [
    "BatchOutcome",
    "CommandRecord",
    "Database",
    "DatabaseDown",
    "Incoming",
    "Invalid",
    "Limits",
    "SchemaError",
    "Store",
    "StoreConfig",
    "StoreKeyError",
    "StoredEvent",
    "command",
    "command_sent",
    "conflicts",
    "events_for",
    "gateway_row",
    "latencies",
    "next_counter",
    "place_hold",
    "record_command",
    "rejects",
    "release_hold",
    "resolve_conflict",
    "retrying",
    "set_building",
    "snapshot_bytes",
    "status_of",
    "store_batch",
    "transient",
    "upkeep",
    "web_request",
]
