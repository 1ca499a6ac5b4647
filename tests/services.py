"""Fixtures for the real services the scale-out tests use: PostgreSQL, Redis, an S3 server.

PostgreSQL and Redis run on 127.0.0.1. A machine without them skips those tests with the
reason; in CI (`CI=true`) they must be there, so the tests fail instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

POSTGRES_URL = os.environ.get(
    "IMAGEHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("IMAGEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, reason: str, state: str = "is not reachable") -> NoReturn:
    """Skip (a user's machine) or fail (CI) a test whose service is not there."""
    message = f"{what} {state} ({reason})"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A URL of the test server's maintenance database, after checking it answers.

    In CI the server must be there: a refused connection is retried for a while, since the
    server may still be starting.
    """
    deadline = time.monotonic() + (30 if IN_CI else 0)
    while True:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return POSTGRES_URL
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                unavailable(
                    f"PostgreSQL at {POSTGRES_URL} (IMAGEHUB_TEST_POSTGRES_URL)", str(exc).strip()
                )
            time.sleep(0.5)


class Databases:
    """Creates fresh databases on the test server and drops them afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    def create(self) -> str:
        name = f"imagehub_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # template0: nobody is ever connected to it, so concurrent creations never clash
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self.names.append(name)
        return database_url(self.admin_url, name)

    def drop_all(self) -> None:
        for name in self.names:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.OperationalError:
                pass  # the server is gone; a later run's fixture cannot clean up either
        self.names.clear()


@pytest.fixture
def postgres_databases(postgres_admin_url: str) -> Iterator[Databases]:
    databases = Databases(postgres_admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases: Databases) -> str:
    """A fresh, empty database of its own, dropped after the test."""
    return postgres_databases.create()


@pytest.fixture(scope="module")
def postgres_for_module(postgres_admin_url: str) -> Iterator[str]:
    """One database for a module's tests: migrating a fresh one per test is slow."""
    databases = Databases(postgres_admin_url)
    yield databases.create()
    databases.drop_all()


@pytest.fixture
def shared_postgres(postgres_for_module: str) -> str:
    """The module's database, emptied (once migrated, every table is truncated)."""
    with psycopg.connect(postgres_for_module, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> 'schema_version'"
        ).fetchall()
        if tables:
            conn.execute(f"TRUNCATE {', '.join(t[0] for t in tables)}")
    return postgres_for_module


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} (IMAGEHUB_TEST_REDIS_URL)", str(exc))
    finally:
        client.close()
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def env(self, prefix: str = "media") -> dict[str, str]:
        """The hub's settings for this server, as environment variables."""
        return {
            "IMAGEHUB_MEDIA_URL": f"s3://{self.bucket}/{prefix}",
            "IMAGEHUB_S3_ENDPOINT_URL": self.endpoint_url,
            "IMAGEHUB_S3_REGION": self.region,
            "IMAGEHUB_S3_ACCESS_KEY_ID": self.access_key_id,
            "IMAGEHUB_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@pytest.fixture(scope="session")
def s3_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) in its own process, on loopback."""
    port = free_port()
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the S3 server did not start: {log.read_text()}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_server(s3_process: str) -> S3Server:
    """A fresh bucket on the S3 server."""
    import boto3

    bucket = f"imagehub-{secrets.token_hex(6)}"
    server = S3Server(s3_process, bucket)
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
    )
    client.create_bucket(Bucket=bucket)
    return server
