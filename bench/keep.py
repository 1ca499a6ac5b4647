"""Run a bench script with its temporary folders kept: nothing it made is deleted at its end.

On ext4 without a journal (the eighth round's machines and later ones), every new inode passes
over the inodes freed in the last 60 s (360 s while their inode table block is dirty): a run's
cleanup of tens of thousands of files makes the next runs' files ten times dearer for minutes
(`proccpu.file_create_us`), on the hub's spare-file thread and, at real sizes, on every write.
Run each command of a round through this, with `TMPDIR` set to one folder, and delete that
folder once the round is over:

    TMPDIR=/tmp/round .venv/bin/python bench/keep.py bench/floor.py --rounds 2
"""

from __future__ import annotations

import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any


def _keep(*_: Any, **__: Any) -> None:
    """What `TemporaryDirectory` runs to delete its folder: here, nothing."""


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    # `with` and `cleanup()` delete through `cleanup`; the finalizer, at exit, through `_cleanup`
    tempfile.TemporaryDirectory.cleanup = _keep  # type: ignore[method-assign]
    tempfile.TemporaryDirectory._cleanup = classmethod(_keep)  # type: ignore[attr-defined]
    script = Path(sys.argv[1])
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(script.parent))  # the script's siblings, as when it is run itself
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
