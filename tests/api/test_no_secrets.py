"""No secret in any log line, error, task object, metric or webhook.

A scenario that touches every path that logs or answers (keys right and wrong, limits,
failures, webhooks and their retries, refused URLs with tokens in them), with every logger
at DEBUG; then every captured log line, answer (headers too), metric and webhook is searched
for each secret. The only answers allowed to carry one are those that hand it out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from imagehub.errors import ContentPolicyViolation
from imagehub.hub import Hub
from imagehub.outbound.client import quiet_url_logs
from imagehub.tenancy.keys import hash_key
from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import ADMIN_KEY, LOOPBACK
from tests.api.test_tenancy import bearer
from tests.api.test_webhooks import delivery_when
from tests.webhook_receiver import Receiver

TOKEN = "s3cr3t-query-token"


@pytest.fixture
def hub(provider: ScriptedProvider) -> Hub:
    return memory_hub(
        provider,
        poll_seconds=0.1,
        fetch_allow_private=LOOPBACK,
        webhook_retry_delays=[0.05],
        shutdown_grace_seconds=0.2,
    )


class Recorder:
    """Every answer of the scenario, except the ones whose job is to hand out a secret."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.seen: list[str] = []

    async def __call__(self, method: str, path: str, *, hands_out: bool = False, **kw: object):
        answer = await self.client.request(method, path, **kw)  # type: ignore[arg-type]
        if not hands_out:
            self.seen.append(f"{answer.status_code} {dict(answer.headers)} {answer.text}")
        return answer


async def scenario(
    client: httpx.AsyncClient, provider, receiver: Receiver, image_server: str
) -> tuple[Recorder, list[str]]:
    call = Recorder(client)
    created = (
        await call(
            "POST",
            "/hub/v1/admin/keys",
            json={"tenant_id": "acme", "limits": {"requests_per_minute": 30, "budget_usd": 0.05}},
            hands_out=True,
        )
    ).json()
    key = created["key"]
    tenant = bearer(key)
    secret = (await call("GET", "/hub/v1/webhooks/secret", headers=tenant, hands_out=True)).json()
    task = {"model": "nano-banana", "input": {"prompt": "a fox"}, "webhook_url": receiver.url}
    receiver.script = [500]
    first = (await call("POST", "/hub/v1/tasks", json=task, headers=tenant)).json()
    await call("POST", "/hub/v1/tasks", json=task, headers=tenant)  # over budget: 429
    await call("GET", f"/hub/v1/tasks/{first['task_id']}?wait=5", headers=tenant)
    await delivery_when(client, first["task_id"], "succeeded", "failed", headers=tenant)
    provider.script = [ContentPolicyViolation("blocked")]
    await call(
        "GET",
        (await call("POST", "/hub/v1/tasks", json=task | {"webhook_url": None})).headers["Location"]
        + "?wait=5",
    )
    # a private address is refused at submit, without the URL's token in the answer
    private = {"prompt": "x", "image_urls": [f"http://10.0.0.1/a.png?token={TOKEN}"]}
    refused = await call(
        "POST", "/hub/v1/tasks", json={"model": "nano-banana/edit", "input": private}
    )
    assert refused.status_code == 422 and TOKEN not in refused.text
    for url in (f"{image_server}?token={TOKEN}",):
        edit = {"model": "nano-banana/edit", "input": {"prompt": "x", "image_urls": [url]}}
        failed = (await call("POST", "/hub/v1/tasks", json=edit)).json()
        done = (await call("GET", f"/hub/v1/tasks/{failed['task_id']}?wait=5")).json()
        # the task echoes its own input to its owner; its error names the URL, not the token
        assert done["status"] == "failed" and url.split("?")[0] in done["error"]["message"]
        assert TOKEN not in done["error"]["message"]
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "ih_" + "x" * 43, ADMIN_KEY + "x"):
        await call("GET", "/hub/v1/tasks", headers=bearer(wrong))
        await call("POST", "/v1/images/generations", json={"prompt": "x"}, headers=bearer(wrong))
    for _ in range(30):
        await call("GET", "/hub/v1/key", headers=tenant)  # until the rate limit answers 429
    await call("POST", f"/hub/v1/admin/keys/{created['id']}/revoke")
    await call("GET", "/hub/v1/tasks", headers=tenant)
    await call("POST", "/hub/v1/webhooks/secret/rotate", hands_out=True)
    await call("GET", "/hub/v1/admin/keys")
    await call("GET", "/metrics")
    await call("GET", "/hub/v1/webhooks/deliveries")
    return call, [key, secret["secret"], ADMIN_KEY, hash_key(key), hash_key(ADMIN_KEY)]


@pytest.fixture
def logs_as_served(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, but for what `imagehub serve` quiets, as it does."""
    httpx_logger = logging.getLogger("httpx")
    before = httpx_logger.level
    caplog.set_level(logging.DEBUG)
    quiet_url_logs()
    yield caplog
    httpx_logger.setLevel(before)


async def test_no_secret_is_logged_answered_measured_or_sent(
    client, provider, receiver, image_server, logs_as_served
):
    caplog = logs_as_served
    missing = image_server.url + "/missing.png"
    call, secrets = await scenario(client, provider, receiver, missing)
    statuses = " ".join(seen.split(" ", 1)[0] for seen in call.seen)
    assert {"401", "429", "200", "202"} <= set(statuses.split()), "the scenario took every path"
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert logs.strip(), "the scenario logged something"
    webhooks = [f"{r.headers} {r.body!r}" for r in receiver.received]
    assert len(webhooks) == 2  # the first failed (500), then the retry
    assert TOKEN not in logs, "a client's URL token in a log line"
    for secret in secrets:
        assert secret not in logs, "a log line"
        for seen in call.seen:
            assert secret not in seen, f"an answer: {seen[:200]}"
        for sent in webhooks:
            assert secret not in sent, "a webhook"
