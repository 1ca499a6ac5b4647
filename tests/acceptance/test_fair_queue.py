"""A tenant's burst does not starve another tenant: against a real `imagehub serve`.

Tenant A submits 2,000 tasks over HTTP; a worker (this test, on the same database, as another
process would) claims a few; tenant B submits one task, which is claimed within the next few
claims, not after A's 2,000. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imagehub.store import SQLiteStore, Store
from imagehub.tasks import Task
from tests.acceptance.conftest import KEY, Server

BURST = 2_000
NB = {"model": "nano-banana", "input": {"prompt": "one of many"}}


def worker_store(backend: str, data_dir: Path, url: str | None) -> Store:
    if backend == "postgres":
        from imagehub.store.postgres import PostgresStore

        assert url is not None
        return PostgresStore(url, pool_size=2)
    return SQLiteStore(data_dir / "imagehub.db")


def claim(store: Store, count: int) -> list[Task]:
    """`count` claims of one task each, as a worker process makes them."""

    async def run() -> list[Task]:
        await store.open()
        try:
            return [t for _ in range(count) for t in await store.claim("worker-1", 1, 60)]
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.mark.timeout(600)  # 2,000 submits over HTTP on a loaded machine
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_single_task_after_a_burst_of_2000_is_claimed_within_a_few(
    backend: str, request: pytest.FixtureRequest, server_factory: type[Server], tmp_path: Path
):
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    env = {"IMAGEHUB_DATABASE_URL": url} if url else {}
    server = server_factory(tmp_path / "data", env).start("--no-worker")
    with server.client() as admin:
        created = admin.post("/hub/v1/admin/keys", json={"tenant_id": "tenant-b"})
        assert created.status_code == 201, created.text
    b_key = created.json()["key"]

    def submit_some(count: int) -> list[str]:
        with server.client(KEY) as client:
            return [client.post("/hub/v1/tasks", json=NB).json()["task_id"] for _ in range(count)]

    with ThreadPoolExecutor(4) as pool:
        burst = [i for ids in pool.map(submit_some, [BURST // 4] * 4) for i in ids]
    assert len(set(burst)) == BURST

    store = worker_store(backend, server.data_dir, url)
    first = claim(store, 3)
    assert len(first) == 3 and {t.tenant_id for t in first} != {"tenant-b"}
    with server.client(b_key) as tenant_b:
        single = tenant_b.post("/hub/v1/tasks", json=NB).json()
        assert single["queue_position"] <= 4  # not behind A's 1,997
        read = tenant_b.get(f"/hub/v1/tasks/{single['task_id']}").json()
        assert read["queue_position"] == single["queue_position"]
    next_claims = claim(store, 5)
    assert single["task_id"] in [t.id for t in next_claims], "B waited behind A's burst"
    a_claims = [t.id for t in first + next_claims if t.tenant_id != "tenant-b"]
    assert len(set(a_claims)) == len(a_claims) == 7 and set(a_claims) <= set(burst)
    with server.client(KEY) as tenant_a:
        last = tenant_a.get(f"/hub/v1/tasks/{a_claims[-1]}").json()
        assert last["status"] == "running" and last["queue_position"] is None
        waiting = tenant_a.get(f"/hub/v1/tasks/{burst[-1]}").json()
        assert waiting["status"] == "queued" and waiting["queue_position"] > 0
