"""What the attempts journal says of each route over a while: requests, latency, errors.

Pure: it sums `Attempt` rows (one per route call) the store returns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from imagehub.tasks import Attempt


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0-100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class CallStats:
    """Route calls summed: how many, how fast, how they ended."""

    requests: int = 0
    succeeded: int = 0
    p50_seconds: float | None = None
    p95_seconds: float | None = None
    #: failed calls by outcome (the error code)
    errors: dict[str, int] = field(default_factory=dict)


def summarise(calls: Iterable[Attempt]) -> CallStats:
    """One summary of `calls`; latency is over every call, failed ones included."""
    seconds: list[float] = []
    errors: Counter[str] = Counter()
    succeeded = 0
    for call in calls:
        seconds.append(call.seconds)
        if call.succeeded:
            succeeded += 1
        else:
            errors[call.outcome] += 1
    return CallStats(
        requests=len(seconds),
        succeeded=succeeded,
        p50_seconds=percentile(seconds, 50),
        p95_seconds=percentile(seconds, 95),
        errors=dict(errors.most_common()),
    )


def by_route(calls: Iterable[Attempt]) -> dict[tuple[str, str], CallStats]:
    """`summarise` per (route, model)."""
    groups: dict[tuple[str, str], list[Attempt]] = {}
    for call in calls:
        groups.setdefault((call.route, call.model), []).append(call)
    return {key: summarise(group) for key, group in groups.items()}
