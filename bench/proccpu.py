"""CPU time from /proc: a whole process tree, and one thread (the event loop's).

The event loop of `imagehub serve` runs on the process's main thread, whose id is the process
id: `/proc/<pid>/task/<pid>/stat` is the loop thread's CPU, `/proc/<pid>/stat` summed over the
process and its descendants the whole tree's. Under `serve --workers N` the loops that serve
are the N children's: the loop figure is then their main threads' sum.

    .venv/bin/python bench/proccpu.py --pid 12345 --seconds 10   # sample a running server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def file_create_us(count: int = 300) -> float:
    """What creating a small file costs this machine now: the median CPU, in microseconds, of
    creating and writing 3 KB files in a new folder where the benchmarks write theirs.

    The hub creates one file a task, on its event loop, and on some machines this cost moves
    tenfold: ext4 without a journal skips, on every new file, the inodes freed in the last
    minutes (a benchmark's cleanup frees tens of thousands). Each benchmark prints it.
    """
    data = os.urandom(3000)
    costs = []
    with tempfile.TemporaryDirectory(prefix="imagehub-fs-") as folder:
        for n in range(count):
            started = time.thread_time()
            with open(os.path.join(folder, f"{n}.png"), "wb") as file:
                file.write(data)
            costs.append(time.thread_time() - started)
    return round(statistics.median(costs) * 1e6, 1)


def _stat_fields(path: Path) -> list[str]:
    """The fields after the command name (which may hold spaces): field 3 of `proc(5)` first."""
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(path: Path) -> float:
    fields = _stat_fields(path)
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(entry / "stat")[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants."""
    total = 0.0
    for member in descendants(pid):
        with contextlib.suppress(OSError):  # it exited meanwhile
            total += _cpu_seconds(Path(f"/proc/{member}/stat"))
    return total


def serving(pid: int) -> list[int]:
    """The processes whose event loops serve: `serve --workers N`'s children, else `pid`."""
    children = []
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            parent = int(_stat_fields(Path(f"/proc/{member}/stat"))[1])
            if parent == pid and b"serve" in Path(f"/proc/{member}/cmdline").read_bytes():
                children.append(member)
    return children or [pid]


def loops_cpu(pid: int) -> float:
    total = 0.0
    for member in serving(pid):
        with contextlib.suppress(OSError):
            total += thread_cpu(member)
    return total


def thread_cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds of one thread of `pid` (its main thread by default)."""
    return _cpu_seconds(Path(f"/proc/{pid}/task/{tid or pid}/stat"))


@dataclass
class Sample:
    """CPU of a process tree and of its main thread since `start()`."""

    pid: int
    tree: float = 0.0
    loop: float = 0.0
    wall: float = 0.0

    def start(self) -> Sample:
        self.tree, self.loop, self.wall = tree_cpu(self.pid), loops_cpu(self.pid), time.time()
        return self

    def since(self) -> dict[str, float]:
        """Seconds of CPU (tree, loop thread) and of wall time since `start()`."""
        return {
            "tree_cpu_s": tree_cpu(self.pid) - self.tree,
            "loop_cpu_s": loops_cpu(self.pid) - self.loop,
            "wall_s": time.time() - self.wall,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    sample = Sample(args.pid).start()
    time.sleep(args.seconds)
    print(json.dumps({name: round(value, 3) for name, value in sample.since().items()}))


if __name__ == "__main__":
    main()
