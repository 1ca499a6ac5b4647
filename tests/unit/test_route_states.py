"""Route states folded across processes, and the journal summed (routing/states, stats)."""

from __future__ import annotations

from datetime import timedelta

from imagehub.routing.states import merge
from imagehub.routing.stats import percentile, summarise
from imagehub.store.base import RouteState
from imagehub.tasks import Attempt, utcnow


def row(process: str, ago: float = 0.0, **state: object) -> RouteState:
    body = {"provider": "gemini", "healthy": True, "in_flight": 0, **state}
    return RouteState(process, "primary", "nano-banana", body, utcnow() - timedelta(seconds=ago))


def test_processes_are_folded_into_one_view():
    soon, later = utcnow() + timedelta(seconds=10), utcnow() + timedelta(seconds=40)
    rows = [
        row("p1", ago=3, in_flight=2, max_concurrency=4, last_error="old"),
        row("p2", ago=1, in_flight=1, healthy=False, cooling_until=later.timestamp()),
        row("p3", ago=2, healthy=False, cooling_until=soon.timestamp(), rate_limited=True),
    ]
    [view] = merge(rows)
    assert (view.route, view.model, view.provider) == ("primary", "nano-banana", "gemini")
    assert view.processes == ["p1", "p3", "p2"]
    assert (view.in_flight, view.max_concurrency, view.healthy) == (3, 4, False)
    assert view.cooling_until is not None
    assert abs((view.cooling_until - later).total_seconds()) < 1e-3
    assert view.rate_limited is True
    assert view.last_error == "old"


def test_healthy_processes_make_a_healthy_view():
    [view] = merge([row("p1"), row("p2", in_flight=5)])
    assert (view.healthy, view.cooling_until, view.in_flight) == (True, None, 5)


def call(seconds: float, outcome: str = "succeeded") -> Attempt:
    end = utcnow()
    return Attempt(
        "t_1",
        "a",
        1,
        "nano-banana",
        "primary",
        "gemini",
        end - timedelta(seconds=seconds),
        end,
        outcome,
    )


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_calls_are_summed_with_errors_by_code():
    calls = [call(1), call(2), call(3, "upstream_timeout"), call(9, "upstream_timeout")]
    calls.append(call(4, "upstream_unavailable"))
    stats = summarise(calls)
    assert (stats.requests, stats.succeeded) == (5, 2)
    assert stats.errors == {"upstream_timeout": 2, "upstream_unavailable": 1}
    assert list(stats.errors) == ["upstream_timeout", "upstream_unavailable"]
    assert stats.p50_seconds is not None and abs(stats.p50_seconds - 3) < 1e-3
    assert stats.p95_seconds is not None and abs(stats.p95_seconds - 9) < 1e-3
