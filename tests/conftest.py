"""Fixtures shared by test folders: a PostgreSQL 15 cluster, and the platform's database on
either engine.

    def test_x(platform_db: str) -> None: ...     # runs twice: SQLite file, PostgreSQL URL
    def test_y(postgres: PostgresCluster) -> None: ...
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .postgres import PostgresCluster, available


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the session (tmp_path's folders are root's alone, 0700)."""
    if not available():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/setup --test")
    folder = Path(tempfile.mkdtemp(prefix="pg-tests-"))
    folder.chmod(0o755)  # postgres must reach its cluster folder inside
    cluster = PostgresCluster.create(folder / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def platform_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The platform's `--db`: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "platform.db")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()
