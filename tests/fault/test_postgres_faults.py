"""Faults on a scaled-out hub: real API and worker processes sharing PostgreSQL.

An audit trigger, installed by the test in its own database, records in the same transaction
every write that finishes a task and every write of its usage (the charge): exactly-once is
then read from the database itself, not inferred from timings.

Webhooks do not exist yet: when they do, their delivery row is written with the finishing
write (the outbox), so "one finishing write per task" below is also "one webhook per task".
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from imagehub.store import migrate
from tests.acceptance.conftest import KEY
from tests.fault.cluster import Api, Worker, client
from tests.fault.postgres import LocalPostgres

AUDIT = """
CREATE TABLE audit (task_id TEXT NOT NULL, what TEXT NOT NULL, value TEXT);
CREATE FUNCTION audit_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed', 'canceled')
       AND OLD.status NOT IN ('succeeded', 'failed', 'canceled') THEN
        INSERT INTO audit VALUES (NEW.id, 'finished', NEW.status);
    END IF;
    IF NEW.usage IS DISTINCT FROM OLD.usage THEN
        INSERT INTO audit VALUES (NEW.id, 'charged', NEW.usage);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_task AFTER UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION audit_task();
"""
FINAL = ("succeeded", "failed", "canceled")


def prepare(url: str) -> None:
    asyncio.run(migrate(url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(AUDIT)


def statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        rows = conn.execute("SELECT status, count(*) FROM tasks GROUP BY 1").fetchall()
    return {status: int(n) for status, n in rows}


def count_final(url: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute("SELECT count(*) FROM tasks WHERE status = ANY(%s)", (list(FINAL),))
        return int(row.fetchone()[0])  # type: ignore[index]


def audit(url: str) -> tuple[Counter[str], Counter[str], set[str], int]:
    """Finishing writes per task, charges per task, the distinct usage values, extra attempts."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT task_id, what, value FROM audit").fetchall()
        reruns = conn.execute("SELECT sum(attempts - 1) FROM tasks").fetchone()
    finished = Counter(task_id for task_id, what, _ in rows if what == "finished")
    charged = Counter(task_id for task_id, what, _ in rows if what == "charged")
    usages = {value for _, what, value in rows if what == "charged"}
    return finished, charged, usages, int(reruns[0]) if reruns else 0


async def submit(urls: list[str], count: int, concurrency: int = 16) -> list[str]:
    """POST `count` tasks spread over the API processes; their ids, in order."""
    ids: list[str] = [""] * count
    numbers = iter(range(count))

    async def one_client(http: httpx.AsyncClient) -> None:
        for n in numbers:
            body = {"model": "nano-banana", "input": {"prompt": f"fault task {n}"}}
            for _ in range(50):  # an API process may answer 503 during a store outage
                answer = await http.post("/hub/v1/tasks", json=body)
                if answer.status_code == 202:
                    ids[n] = answer.json()["task_id"]
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"task {n} was never accepted: {answer.text}")

    clients = [
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        for url in urls
    ]
    try:
        await asyncio.gather(*(one_client(clients[i % len(clients)]) for i in range(concurrency)))
    finally:
        for http in clients:
            await http.aclose()
    return ids


def check_every_task(api: Api, ids: list[str], media: Path) -> None:
    """Each task is in the history once, succeeded, with its image stored."""
    seen: list[dict] = []
    with client(api) as http:
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = http.get("/hub/v1/tasks", params=params).json()
            seen += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(t["task_id"] for t in seen) == sorted(ids), "lost or duplicated tasks"
        for task in seen:
            assert task["status"] == "succeeded", task
            (image,) = task["output"]["images"]
            file_id = image["url"].rsplit("/", 1)[1]
            assert (media / file_id[2] / file_id).stat().st_size == image["file_size"]
        for task in random.sample(seen, 20):
            assert http.get(task["output"]["images"][0]["url"]).status_code == 200


def check_exactly_once(url: str, ids: list[str]) -> int:
    finished, charged, usages, reruns = audit(url)
    assert set(finished) == set(ids) and set(finished.values()) == {1}, "one finishing write"
    assert set(charged) == set(ids) and set(charged.values()) == {1}, "one charge per task"
    assert len(usages) == 1 and '"cost_usd":0.0,' not in usages.pop(), "the one price, not 0"
    return reruns


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for the processes' data and logs; the logs' tails are shown when a test fails."""
    yield tmp_path
    for log in sorted(tmp_path.rglob("*.log")):
        logging.getLogger("tests.fault").info("%s:\n%s", log, log.read_text()[-2000:])


def env_for(url: str, media: Path, **extra: str) -> dict[str, str]:
    return {
        "IMAGEHUB_DATABASE_URL": url,
        "IMAGEHUB_MEDIA_DIR": str(media),
        "IMAGEHUB_DATABASE_POOL_SIZE": "4",
        # a short wait keeps the test's outage below short
        "IMAGEHUB_DATABASE_WAIT_SECONDS": "2",
        "IMAGEHUB_POLL_SECONDS": "0.5",
        "IMAGEHUB_LEASE_SECONDS": "2",
        "IMAGEHUB_SHUTDOWN_GRACE_SECONDS": "2",
        **extra,
    }


@pytest.mark.timeout(240)
def test_workers_killed_again_and_again_lose_nothing_and_charge_once(
    postgres_url: str, cluster_dir: Path
):
    prepare(postgres_url)
    media = cluster_dir / "media"
    # a task can be hit by several kills in a row: attempts spent that way are this test's doing
    env = env_for(postgres_url, media, IMAGEHUB_MAX_ATTEMPTS="8")
    apis = [Api(cluster_dir / f"api{n}", env).start() for n in range(2)]
    # each call 0.2 s: the 2,000 tasks take the workers several seconds, and the kills (one
    # every 1-2 s with its restart) hit tasks running (at 0.05 s a call the hub was done
    # between its second and third kill)
    workers = [Worker(cluster_dir / f"w{n}", env, "worker", 0.2) for n in range(3)]
    for worker in workers:
        worker.start("--concurrency", "16")
    count, kills = 2000, 0
    try:
        submitted: dict[str, list[str]] = {}
        submitter = threading.Thread(
            target=lambda: submitted.update(ids=asyncio.run(submit([a.url for a in apis], count)))
        )
        submitter.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if not submitter.is_alive() and count_final(postgres_url) >= count:
                break
            time.sleep(random.uniform(0.8, 1.6))
            victim = workers[kills % len(workers)]
            victim.kill()
            kills += 1
            victim.start("--concurrency", "16")
        submitter.join(60)
        ids = submitted["ids"]
        assert count_final(postgres_url) == count, "every task reached a final status"
        check_every_task(apis[0], ids, media)
        reruns = check_exactly_once(postgres_url, ids)
        assert kills >= 3 and reruns > 0, "the kills hit running tasks, which ran again"
        calls = Counter(line for w in workers for line in w.calls.read_text().splitlines())
        assert len(calls) == count, "every task reached the upstream"
        # at least once, at most once per attempt: a kill before the call costs no call
        assert count < calls.total() <= count + reruns
    finally:
        for worker in workers:
            worker.ensure_dead()
        for api in apis:
            api.stop()


# -- a PostgreSQL restart


@pytest.fixture
def postgres_server(local_postgres: LocalPostgres) -> Iterator[Callable[[str], None]]:
    """Stop and start the tests' own PostgreSQL server; it is left running whatever happens."""
    actions = {"stop": local_postgres.stop, "start": local_postgres.start}
    try:
        yield lambda action: actions[action]()
    finally:
        if not local_postgres.running:
            local_postgres.start()
        wait_until(lambda: reachable(local_postgres.url), 60, "PostgreSQL did not come back")


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def wait_until(check: Callable[[], bool], seconds: float, message: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message if isinstance(message, str) else message())
        time.sleep(0.1)


def readyz(api: Api) -> tuple[int, dict]:
    try:
        answer = httpx.get(api.url + "/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return 0, {"error": str(exc)}
    return answer.status_code, answer.json()


@pytest.mark.timeout(180)
def test_a_postgres_restart_mid_run_loses_nothing(
    postgres_url: str, cluster_dir: Path, postgres_server: Callable[[str], None]
):
    prepare(postgres_url)
    media = cluster_dir / "media"
    env = env_for(postgres_url, media, IMAGEHUB_LEASE_SECONDS="4")
    apis = [Api(cluster_dir / f"api{n}", env).start() for n in range(2)]
    workers = [Worker(cluster_dir / f"w{n}", env, "worker", 0.3) for n in range(2)]
    for worker in workers:
        worker.start("--concurrency", "8")
    try:
        ids = asyncio.run(submit([api.url for api in apis], 300))
        wait_until(lambda: count_final(postgres_url) >= 30, 60, "the run did not start")
        assert count_final(postgres_url) < 300, "the restart comes mid-run"

        postgres_server("stop")
        for api in apis:  # the outage shows while it lasts
            wait_until(lambda api=api: readyz(api)[0] == 503, 30, "/readyz missed the outage")
            assert readyz(api)[1]["store"] is False
        with client(apis[0]) as http:
            refused = http.post(
                "/hub/v1/tasks", json={"model": "nano-banana", "input": {"prompt": "x"}}
            )
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        postgres_server("start")

        for api in apis:  # the processes reconnect by themselves
            wait_until(lambda api=api: readyz(api)[0] == 200, 60, "/readyz did not recover")
        ids += asyncio.run(submit([api.url for api in apis], 100))
        wait_until(
            lambda: count_final(postgres_url) >= 400,
            90,
            lambda: f"tasks were lost: {statuses(postgres_url)}",
        )
        assert statuses(postgres_url) == {"succeeded": 400}
        assert all(worker.alive for worker in workers), "workers survived the outage"
        check_every_task(apis[0], ids, media)
        check_exactly_once(postgres_url, ids)
    finally:
        for worker in workers:
            worker.ensure_dead()
        for api in apis:
            api.stop()
