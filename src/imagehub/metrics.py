"""Prometheus metrics, in a registry of the hub's own (nothing global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from imagehub.tasks import Task


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def submitted(self, task: Task) -> None:
        self._submitted.labels(task.model).inc()

    def finished(self, task: Task) -> None:
        self._finished.labels(task.model, task.status.value, task.provider or "none").inc()
        if task.finished_at is not None:
            seconds = (task.finished_at - task.created_at).total_seconds()
            self._duration.labels(task.model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
