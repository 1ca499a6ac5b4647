"""The CLI's progress bar: drawn only when stdout and stderr are terminals and not --json."""

from __future__ import annotations

import io

import pytest

from imagehub.cli.display import ProgressBar, describe
from imagehub.schemas import TaskOut
from tests.sdk.test_client_unit import TASK


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def task(**fields: object) -> TaskOut:
    return TaskOut.model_validate({**TASK, **fields})


@pytest.mark.parametrize(
    ("stderr", "stdout", "quiet"),
    [
        (Terminal(), io.StringIO(), False),  # output piped or captured
        (io.StringIO(), Terminal(), False),  # errors piped
        (Terminal(), Terminal(), True),  # --json
    ],
)
def test_the_bar_is_quiet_unless_both_streams_are_terminals(stderr, stdout, quiet):
    bar = ProgressBar(quiet=quiet, stream=stderr, out=stdout)
    assert not bar.live
    with bar:
        bar.show(task(queue_position=3, eta_seconds=12.0, progress=0.0))
        bar.show(task(status="running", progress=0.5, eta_seconds=4.0))
    assert stderr.getvalue() == "" and stdout.getvalue() == ""


def test_on_a_terminal_the_bar_shows_position_progress_and_eta():
    stderr, stdout = Terminal(), Terminal()
    bar = ProgressBar(stream=stderr, out=stdout)
    assert bar.live
    with bar:
        bar.show(task(queue_position=3, eta_seconds=12.0, progress=0.0))
        bar._bar.refresh()  # type: ignore[union-attr]
        queued = stderr.getvalue()
        bar.show(task(status="running", attempts=1, progress=0.5, eta_seconds=4.0))
        bar._bar.refresh()  # type: ignore[union-attr]
        running = stderr.getvalue()[len(queued) :]
    assert "tsk_1 queued, 3 ahead" in queued and "ETA ~12s" in queued and "0%" in queued
    assert "tsk_1 running" in running and "50%" in running and "ETA ~4s" in running
    assert stdout.getvalue() == ""  # the bar never writes where the output goes


def test_the_bar_words():
    assert describe(task(queue_position=0)) == "tsk_1 queued, 0 ahead"
    assert describe(task(status="running", attempts=2)) == "tsk_1 running (attempt 2)"
