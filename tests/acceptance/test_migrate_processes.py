"""`imagehub migrate` run by many processes at once upgrades a database once, safely.

Real processes: the acceptance layer (the migrations themselves: tests/contract/test_migrations.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagehub.store import sqlite as sqlite_backend
from imagehub.store.postgres import MIGRATIONS as PG_MIGRATIONS
from tests.contract.test_migrations import a_task, first_sqlite_schema, pg_versions, sqlite_version


def migrate_processes(count: int, env: dict[str, str], *args: str) -> list[str]:
    """`imagehub migrate` in `count` processes started together; their outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "imagehub.cli", "migrate", *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        outputs = [proc.communicate(timeout=50)[0] for proc in procs]
    finally:  # interrupted (a timeout): no process nor pipe outlives the test
        for proc in procs:
            proc.kill()
            proc.communicate()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
    return outputs


def test_imagehub_migrate_on_sqlite_from_many_processes_at_once(tmp_path: Path):
    first_sqlite_schema(tmp_path / "imagehub.db", a_task())
    outputs = migrate_processes(4, {}, "--data-dir", str(tmp_path))
    expected = f"database schema at version {len(sqlite_backend.MIGRATIONS)}"
    assert all(expected in output for output in outputs)
    assert sqlite_version(tmp_path / "imagehub.db")[0] == len(sqlite_backend.MIGRATIONS)


def test_imagehub_migrate_on_postgres_from_many_processes_at_once(postgres_url: str):
    outputs = migrate_processes(5, {"IMAGEHUB_DATABASE_URL": postgres_url})
    assert all(f"database schema at version {len(PG_MIGRATIONS)}" in out for out in outputs)
    assert pg_versions(postgres_url) == list(range(1, len(PG_MIGRATIONS) + 1))
