"""The serving process's garbage collector, set for a long-running server.

CPython's full collection walks every tracked object, and after start-up that is about 110,000
of them (FastAPI, pydantic, Pillow, the catalog), none of which ever becomes garbage: each full
collection held the event loop for 80 ms of CPU (several hundred ms on a busy machine), the
slowest submits of bench/images.py's demo queue. `settle()` moves the start-up heap out of the
collector's sight (`gc.freeze`) and lets the young generation grow larger before a collection:
the requests' short-lived cycles are still collected, in far fewer, still short, passes.
"""

from __future__ import annotations

import gc

#: allocations (net) between two young collections; CPython's default is 700, which ran one
#: collection every few submits, each walking what the last ones left
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze what is left (start-up objects), and collect the young less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
