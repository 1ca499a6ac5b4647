"""Run a script or a module (`-m name`) under cProfile, on from SIGUSR1 until SIGUSR2, which
writes the profile to the file `BENCH_PROFILE` names: `floor.py --calls` counts the Python calls
a task makes on the event loop's thread (cProfile sees only the thread that turned it on, and
signal handlers run on the main thread, the loop's).

    BENCH_PROFILE=/tmp/hub.prof .venv/bin/python bench/profiled.py -m imagehub.cli serve
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys


def main() -> None:
    out = os.environ["BENCH_PROFILE"]
    profile = cProfile.Profile()

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
    signal.signal(signal.SIGUSR2, stop)
    args = sys.argv[1:]
    if args[0] == "-m":
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
