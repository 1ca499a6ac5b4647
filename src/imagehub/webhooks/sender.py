"""Webhooks: a task's `webhook_url` receives the task object once the task is ready.

Signed as the Standard Webhooks spec says: `webhook-id` (the same on every attempt, derived
from the task), `webhook-timestamp` (this attempt's), and `webhook-signature`, `v1,` and the
base64 HMAC-SHA256 of `id.timestamp.body` under the tenant's `whsec_` secret (one signature
per secret that still signs, so a rotation never breaks a receiver).

Delivery is at least once: the store writes the delivery as an outbox row with the task, and
the sender below leases due rows as workers lease tasks. An attempt that a crash interrupts
is retried once its lease expires; an answer other than 2xx is retried on the
`IMAGEHUB_WEBHOOK_RETRY_DELAYS` schedule (about a day), `410 Gone` stops at once. Redirects
are failures (never followed), and every connection goes through the safe client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
from datetime import datetime, timedelta

from imagehub import logs
from imagehub.errors import InvalidInput, parse_retry_after
from imagehub.metrics import Metrics
from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.client import FetchError, Refused, SafeClient, check_target
from imagehub.render import task_out
from imagehub.settings import Settings
from imagehub.store import Store
from imagehub.tasks import Task, new_id, utcnow
from imagehub.tenancy.accounts import Accounts
from imagehub.tracing import TASK_ID, Tracing, Value, trace_id_of
from imagehub.webhooks.types import Delivery, DeliveryAttempt, DeliveryState

log = logging.getLogger("imagehub.webhooks.sender")

#: attempts kept in a delivery's history (the latest ones)
MAX_HISTORY = 20
#: deliveries one process sends at once
CONCURRENCY = 32
#: longest `Retry-After` a receiver can ask for
MAX_RETRY_AFTER = 3600.0


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(signatures)


def check_webhook_url(url: str, policy: AddressPolicy) -> None:
    """Refuse at submit what can never be delivered: a bad URL or a forbidden address.

    A host name is checked when the delivery connects (its addresses may change until then).
    """
    try:
        check_target(url, policy)
    except Refused as exc:
        raise InvalidInput.one(["webhook_url"], str(exc), "url") from None


def task_body(task: Task, base_url: str) -> bytes:
    """The task object as `GET /hub/v1/tasks/{id}` shows it, minus inline (sync_mode) images."""
    if task.output is not None and any(i.data_uri for i in task.output.images):
        task = dataclasses.replace(task, output=task.output.purge())
    return json.dumps(task_out(task, base_url).model_dump(), separators=(",", ":")).encode()


class WebhookSender:
    """Leases due deliveries and sends them, up to CONCURRENCY at once, in this process."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        accounts: Accounts,
        client: SafeClient,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.accounts = accounts
        self.client = client
        self.tracing = tracing or Tracing()
        self.metrics = metrics
        self.owner = new_id("whk_")
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    @property
    def lease_seconds(self) -> float:
        """Longer than any attempt can take: an attempt needs no heartbeat."""
        return self.settings.webhook_timeout_seconds + self.settings.lease_seconds

    def nudge(self) -> None:
        """A delivery may be due: look now rather than at the next poll."""
        self._wake.set()

    def task_finished(self, task: Task) -> None:
        """A task finished in this process: its delivery, if it has one, is due now."""
        if task.webhook_url is not None:
            self.nudge()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                free = CONCURRENCY - len(self._running)
                claimed: list[Delivery] = []
                if free > 0:
                    try:
                        claimed = await self.store.claim_deliveries(
                            self.owner, free, self.lease_seconds
                        )
                    except Exception:
                        log.exception("claiming webhook deliveries failed; retrying")
                for delivery in claimed:
                    self._start(delivery)
                if free == 0 or len(claimed) < free:
                    delay = self.settings.poll_seconds * random.uniform(0.8, 1.2)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await self._drain()

    def _start(self, delivery: Delivery) -> None:
        runner = asyncio.create_task(self._deliver(delivery), name=f"imagehub-{delivery.id}")
        self._running.add(runner)

        def done(finished: asyncio.Task[None]) -> None:
            self._running.discard(finished)
            self._wake.set()

        runner.add_done_callback(done)

    async def _drain(self) -> None:
        """Let attempts under way finish for the grace period; the rest are retried elsewhere."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=self.settings.shutdown_grace_seconds)
        for runner in set(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _deliver(self, delivery: Delivery) -> None:
        # `attempt` names the trace once it has read the task: for this delivery's lines only
        with logs.about(task_id=delivery.task_id, trace_id=None):
            await self._deliver_logged(delivery)

    async def _deliver_logged(self, delivery: Delivery) -> None:
        try:
            outcome = await self.attempt(delivery)
        except Exception:
            log.exception("webhook %s failed inside the hub", delivery.id)
            failure = DeliveryAttempt(utcnow(), None, "the hub failed to send it")
            outcome = self._retry(delivery, failure, None)
        try:
            written = await self.store.finish_delivery(outcome)
        except Exception:
            log.warning("could not record webhook %s; its lease will expire", delivery.id)
            return
        if written and self.metrics is not None:
            retried = outcome.state == "pending"
            self.metrics.webhook("retry" if retried else outcome.state)
        if written:
            log.info(
                "webhook %s for task %s: attempt %d, %s",
                delivery.id,
                delivery.task_id,
                delivery.attempts,
                outcome.state,
            )

    async def attempt(self, delivery: Delivery) -> Delivery:
        """Send one attempt of a leased delivery; the delivery as it should be written."""
        task = await self.store.get(delivery.task_id, delivery.tenant_id)
        started = utcnow()
        if task is None:
            gone = DeliveryAttempt(started, None, "the task no longer exists")
            return self._ended(delivery, gone, "failed")
        # the delivery's later log lines, after its span, name the task's trace
        logs.trace_id.set(trace_id_of(task.traceparent))
        secrets = [s.secret for s in await self.accounts.webhook_secrets(delivery.tenant_id)]
        body = task_body(task, delivery.base_url or (self.settings.public_url or "").rstrip("/"))
        attributes: dict[str, Value] = {TASK_ID: task.id, "imagehub.attempt": delivery.attempts}
        with self.tracing.span(
            "imagehub.webhook", attributes, parent=task.traceparent, kind="client"
        ) as span:
            outcome = await self._send(delivery, secrets, body, started)
            last = outcome.history[-1] if outcome.history else None
            if last is not None and last.status is not None:
                span.set("http.response.status_code", last.status)
            span.set("imagehub.outcome", "retry" if outcome.state == "pending" else outcome.state)
            if outcome.state != "succeeded":
                span.fail("webhook_failed")
            return outcome

    async def _send(
        self, delivery: Delivery, secrets: list[str], body: bytes, started: datetime
    ) -> Delivery:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets, delivery.id, timestamp, body),
        }
        try:
            status, answer = await self.client.post(
                delivery.url, body, headers, deadline=self.settings.webhook_timeout_seconds
            )
        except FetchError as exc:
            return self._retry(delivery, DeliveryAttempt(started, None, str(exc)), None)
        attempt = DeliveryAttempt(started, status, None)
        if 200 <= status < 300:
            return self._ended(delivery, attempt, "succeeded")
        if status == 410:  # the receiver says: stop
            return self._ended(delivery, attempt, "failed")
        return self._retry(delivery, attempt, parse_retry_after(answer.get("retry-after")))

    def _ended(
        self, delivery: Delivery, attempt: DeliveryAttempt, state: DeliveryState
    ) -> Delivery:
        history = (*delivery.history, attempt)[-MAX_HISTORY:]
        return dataclasses.replace(delivery, state=state, history=history, next_attempt_at=None)

    def _retry(
        self, delivery: Delivery, attempt: DeliveryAttempt, retry_after: float | None
    ) -> Delivery:
        delays = self.settings.webhook_retry_delays
        if delivery.attempts > len(delays):
            return self._ended(delivery, attempt, "failed")
        delay = delays[delivery.attempts - 1] * random.uniform(0.9, 1.1)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return dataclasses.replace(
            delivery,
            history=(*delivery.history, attempt)[-MAX_HISTORY:],
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
