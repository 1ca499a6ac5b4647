"""The fault tests run against a PostgreSQL server of their own (tests/fault/postgres.py):
`postgres_admin_url`, and so `postgres_url`, point at it here, never at a shared server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.postgres import LocalPostgres, find_bin_dir
from tests.services import unavailable


@pytest.fixture(scope="session")
def local_postgres() -> Iterator[LocalPostgres]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(
            "PostgreSQL's initdb and pg_ctl, for the fault tests' own server,",
            "neither in /usr/lib/postgresql/*/bin nor on PATH",
            state="are not installed",
        )
    server = LocalPostgres(bin_dir)
    try:
        server.init().start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_admin_url(local_postgres: LocalPostgres) -> str:
    return local_postgres.url
