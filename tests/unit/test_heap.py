"""The serving process's collector settings (`imagehub.cli.heap`), in a process of their own."""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import gc, weakref
from imagehub.cli import heap

class Node:
    pass

started = Node()
heap.settle()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()  # the start-up heap
assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
# what was there at settle() is out of the collector's sight, later cycles are still collected
assert all(obj is not started for obj in gc.get_objects())
cycle = Node()
cycle.me = cycle
gone = weakref.ref(cycle)
del cycle
gc.collect()
assert gone() is None
print("ok")
"""


def test_settle_freezes_the_start_up_heap_and_still_collects_later_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
