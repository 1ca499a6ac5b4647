"""`logs.about` blocks set their ids for the lines inside, and put back the ones outside."""

from __future__ import annotations

from imagehub import logs


def test_about_blocks_nest_and_restore():
    with logs.about(task_id="t1"):
        assert logs.task_id.get() == "t1"
        with logs.about(route="r1", task_id="t2"):
            assert (logs.route.get(), logs.task_id.get()) == ("r1", "t2")
        assert (logs.route.get(), logs.task_id.get()) == (None, "t1")
        with logs.about(route="r2"):
            assert (logs.route.get(), logs.task_id.get()) == ("r2", "t1")
        assert logs.route.get() is None
    assert logs.task_id.get() is None
