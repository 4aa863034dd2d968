"""The gateway's store: tenants, cards, visitor codes, users, and the durable event journal.

SQLite in WAL mode with one writer thread; ID numbers and phones sealed with AES-256-GCM.
See docs/store.md for the schema and the reasons behind it.
"""

from .alarms import Alarm
from .entries import EventPage, EventQuery
from .errors import Conflict, KeyFileError, NotFound, StoreClosed, StoreError, ValidationError
from .journal import EVENT_TYPES, JournalEntry
from .models import (
    Card,
    CardStatus,
    Role,
    Tenant,
    TenantCreate,
    TenantSource,
    TenantStatus,
    TenantUpdate,
    UpsertResult,
    User,
)
from .registry import CardGrant, IssuedVisitorCode, VisitorCode, VisitorCodeResult
from .snapshots import SNAPSHOT_TYPES, SnapshotHold, SnapshotRef
from .store import Store
from .sync import (
    RegistryApplied,
    RegistryInvalid,
    RegistryProblem,
    RegistryRejected,
    VersionGap,
    VersionNotNewer,
)
from .tx import Transaction
from .upsert import BulkUpsertResult, Problem, UpsertRejected
from .validation import normalize_id_number, normalize_phone
from .writer import Yielding

__all__ = [
    "EVENT_TYPES",
    "SNAPSHOT_TYPES",
    "Alarm",
    "BulkUpsertResult",
    "Card",
    "CardGrant",
    "CardStatus",
    "Conflict",
    "EventPage",
    "EventQuery",
    "IssuedVisitorCode",
    "JournalEntry",
    "KeyFileError",
    "NotFound",
    "Problem",
    "RegistryApplied",
    "RegistryInvalid",
    "RegistryProblem",
    "RegistryRejected",
    "Role",
    "SnapshotHold",
    "SnapshotRef",
    "Store",
    "StoreClosed",
    "StoreError",
    "Tenant",
    "TenantCreate",
    "TenantSource",
    "TenantStatus",
    "TenantUpdate",
    "Transaction",
    "UpsertRejected",
    "UpsertResult",
    "User",
    "ValidationError",
    "VersionGap",
    "VersionNotNewer",
    "VisitorCode",
    "VisitorCodeResult",
    "Yielding",
    "normalize_id_number",
    "normalize_phone",
]
