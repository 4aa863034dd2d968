"""Pictures outside the database: content-addressed files named by their SHA-256.

    pictures = FolderSnapshots(Path("/var/lib/rental-platform/snapshots"))
    digest = pictures.put(jpeg)            # ab/cd/abcd….jpg, written once, atomically
    pictures.get(digest)                   # the bytes, or None

The database keeps which event a picture belongs to (`snapshots`: gateway_id, event_id,
sha256); the bytes live in a `SnapshotStore`. The interface is that of an object store (put by
key, get, delete, list what is older than a date) so an S3-compatible bucket can replace the
folder with a class of the same four methods: keys are `ab/cd/<sha256>.jpg`, the same layout a
bucket would use, and nothing relies on folder semantics (no rename across keys, no listing
by prefix for reads).

A picture is written (and fsynced) before the row naming it commits: a crash in between
leaves a file nobody names, which retention removes, never a row without its picture.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .files import publish


class SnapshotStore(Protocol):
    """Where pictures live, by SHA-256 of their bytes."""

    def put(self, data: bytes) -> str:
        """Store `data` (idempotent) and return its SHA-256 in hex."""
        ...

    def get(self, sha256: str) -> bytes | None:
        """The bytes stored under `sha256`, or None."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the picture (nothing if absent)."""
        ...

    def older_than(self, when: float) -> Iterator[str]:
        """The SHA-256 of every picture stored before `when` (Unix seconds)."""
        ...


def key_of(sha256: str) -> str:
    """The object key of a picture: `ab/cd/abcd….jpg`."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class FolderSnapshots:
    """A SnapshotStore in a local (or network-mounted) folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _is_sha256(sha256):
            raise ValueError("not a SHA-256 in hex")
        return self.root / key_of(sha256)

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if path.exists():
            return sha256
        # The same bytes whoever wins: the name is their hash.
        publish(path, data, 0o640, replace=True)
        return sha256

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(sha256).unlink()

    def older_than(self, when: float) -> Iterator[str]:
        for path in self.root.glob("??/??/*.jpg"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < when and _is_sha256(path.stem):
                    yield path.stem
