"""Prometheus metrics, in a registry of the hub's own (nothing global).

Labels are bounded: a model, route or provider label takes only the values the hub was
configured with (anything else counts as `other`), an outcome only the hub's error codes. No
task, key or tenant id is ever a label. The queue's gauges are read from the store at scrape
time (at most once per `STATS_SECONDS`), so every API process reports the whole queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from imagehub.errors import TASK_ERRORS
from imagehub.tasks import QueueStats, Task

log = logging.getLogger("imagehub.metrics")

#: how long one read of the queue's figures serves scrapes
STATS_SECONDS = 5.0
#: the value of a label outside its configured set
OTHER = "other"
#: what an upstream call ends with: `ok`, or the error code of the hub it raised
OUTCOMES = frozenset({"ok", "canceled", "internal_error", *TASK_ERRORS})
#: what one webhook attempt ends with
WEBHOOK_OUTCOMES = frozenset({"succeeded", "retry", "failed"})
#: the statuses a task leaves, which the queue gauges count
LIVE_STATUSES = ("queued", "running")


class QueueSource(Protocol):
    """The store, as the metrics read it."""

    async def queue_stats(self) -> QueueStats: ...


class Metrics:
    def __init__(
        self,
        *,
        models: Iterable[str] = (),
        routes: Iterable[str] = (),
        providers: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry()
        self.models = frozenset(models)
        self.routes = frozenset(routes)
        self.providers = frozenset(providers)
        #: (metric, label values) -> its child: prometheus_client's own lookup takes a lock
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        # process health: memory, CPU, open files, start time; the Python version
        ProcessCollector(registry=self.registry)
        self.registry.register(PLATFORM_COLLECTOR)
        self._submitted = Counter(
            "imagehub_tasks_submitted", "Tasks accepted", ["model"], registry=self.registry
        )
        self._finished = Counter(
            "imagehub_tasks_finished",
            "Tasks that reached a final status",
            ["model", "status", "provider"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "imagehub_task_duration_seconds",
            "Submit to ready, of finished tasks",
            ["model"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self._upstream_seconds = Histogram(
            "imagehub_upstream_seconds",
            "Time of one upstream call, by route (any outcome)",
            ["route", "provider", "model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )
        self._upstream_calls = Counter(
            "imagehub_upstream_calls",
            "Upstream calls by route and outcome (`ok` or the error code)",
            ["route", "provider", "model", "outcome"],
            registry=self.registry,
        )
        self._webhooks = Counter(
            "imagehub_webhook_attempts",
            "Webhook delivery attempts by outcome: succeeded, retry (failed, tried again "
            "later), failed (given up)",
            ["outcome"],
            registry=self.registry,
        )
        self._queue = _QueueCollector(self.models)
        self._queue_registered = False
        self._refreshed = -STATS_SECONDS
        self._refreshing = asyncio.Lock()

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, kept: the values are bounded (below), so is this."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- bounded label values (an empty set, as in `Metrics()`: any value)

    def _model(self, model: str) -> str:
        return model if model in self.models or not self.models else OTHER

    def _route(self, route: str) -> str:
        return route if route in self.routes or not self.routes else OTHER

    def _provider(self, provider: str) -> str:
        return provider if provider in self.providers or not self.providers else OTHER

    # -- what the hub reports

    def submitted(self, task: Task) -> None:
        self._child(self._submitted, self._model(task.model)).inc()

    def finished(self, task: Task) -> None:
        provider = self._route(task.provider) if task.provider else "none"
        self._child(self._finished, self._model(task.model), task.status.value, provider).inc()
        if task.finished_at is not None:
            seconds = (task.finished_at - task.created_at).total_seconds()
            self._child(self._duration, self._model(task.model)).observe(seconds)

    def upstream(
        self, *, route: str, provider: str, model: str, outcome: str, seconds: float
    ) -> None:
        """One upstream call ended: its time and its outcome."""
        labels = (self._route(route), self._provider(provider), self._model(model))
        self._child(self._upstream_seconds, *labels).observe(seconds)
        self._child(self._upstream_calls, *labels, outcome if outcome in OUTCOMES else OTHER).inc()

    def webhook(self, outcome: str) -> None:
        """One webhook attempt ended."""
        self._child(self._webhooks, outcome if outcome in WEBHOOK_OUTCOMES else OTHER).inc()

    async def refresh(self, store: QueueSource) -> None:
        """Read the queue's figures from the store, unless a read is recent enough.

        The first call registers the queue gauges: a process that serves no `/metrics`
        (a worker) never reports a queue it never read.
        """
        if time.monotonic() - self._refreshed < STATS_SECONDS:
            return
        async with self._refreshing:
            if time.monotonic() - self._refreshed < STATS_SECONDS:
                return
            try:
                self._queue.stats = await store.queue_stats()
            except Exception as exc:  # the scrape still answers, with the last figures
                log.warning("could not read the queue's figures: %s", exc)
            self._refreshed = time.monotonic()
            if not self._queue_registered:
                self.registry.register(self._queue)
                self._queue_registered = True

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QueueCollector(Collector):
    """The queue's gauges, from the last `QueueStats` read."""

    def __init__(self, models: frozenset[str]) -> None:
        self.models = models
        self.stats = QueueStats({}, {}, 0, 0.0)

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        tasks = GaugeMetricFamily(
            "imagehub_queue_tasks",
            "Tasks queued or running now, by model",
            labels=["model", "status"],
        )
        oldest = GaugeMetricFamily(
            "imagehub_queue_oldest_seconds",
            "How long the longest-waiting due queued task has waited, by model",
            labels=["model"],
        )
        models = self.models or {model for model, _ in stats.tasks}
        for model in sorted(models):
            for status in LIVE_STATUSES:
                tasks.add_metric([model, status], stats.tasks.get((model, status), 0))
            oldest.add_metric([model], stats.oldest_queued.get(model, 0.0))
        yield tasks
        yield oldest
        yield GaugeMetricFamily(
            "imagehub_webhook_backlog",
            "Webhook deliveries pending (due now or waiting to be retried)",
            value=stats.webhooks_pending,
        )
        yield GaugeMetricFamily(
            "imagehub_webhook_oldest_due_seconds",
            "How long the longest-due pending webhook delivery has waited",
            value=stats.webhooks_oldest_due,
        )
