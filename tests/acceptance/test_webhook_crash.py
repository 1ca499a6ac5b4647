"""A hub killed (SIGKILL) while a webhook is on the wire loses no webhook: after a restart the
delivery's lease expires and it is sent again, with the same webhook-id."""

from __future__ import annotations

import time
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.acceptance.conftest import Server
from tests.webhook_receiver import Receiver

ENV = {
    "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1",
    "IMAGEHUB_WEBHOOK_TIMEOUT_SECONDS": "2",
    "IMAGEHUB_LEASE_SECONDS": "1",
    "IMAGEHUB_POLL_SECONDS": "0.2",
}


def test_a_hub_killed_mid_delivery_delivers_after_a_restart(
    server_factory: type[Server], tmp_path: Path, receiver: Receiver
):
    hub = server_factory(tmp_path / "data", ENV).start()
    receiver.hold = 1  # the first delivery gets no answer: the hub dies waiting for it
    with hub.client() as client:
        secret = client.get("/hub/v1/webhooks/secret").json()["secret"]
        body = {"model": "nano-banana", "input": {"prompt": "a fox"}, "webhook_url": receiver.url}
        task_id = client.post("/hub/v1/tasks", json=body).json()["task_id"]
    receiver.wait_for(1)
    hub.kill()
    hub.start()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{task_id}"
    assert Webhook(secret).verify(second.body, second.headers)["task_id"] == task_id
    with hub.client() as client:
        deadline = time.monotonic() + 20
        while (delivery := client.get(f"/hub/v1/tasks/{task_id}/webhook").json())["state"] != (
            "succeeded"
        ):
            assert time.monotonic() < deadline, delivery
            time.sleep(0.05)
    # two attempts started; only the one that got an answer is in the history
    assert delivery["attempts"] == 2
    assert [a["status"] for a in delivery["history"]] == [200]
    time.sleep(0.5)
    assert len(receiver.received) == 2, "delivered once more, not again and again"
