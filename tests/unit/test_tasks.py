"""The task state machine: transitions, Task.replace, ready, ids."""

from __future__ import annotations

import dataclasses
import json
import re
import string
from itertools import product

import pytest

from imagehub.errors import InvalidTransition
from imagehub.tasks import (
    ALLOWED,
    FINAL,
    OutputImage,
    Task,
    TaskOutput,
    TaskStatus,
    check_transition,
    new_id,
)

Q, R, S, F, C = (
    TaskStatus.QUEUED,
    TaskStatus.RUNNING,
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.CANCELED,
)

#: the lifecycle: a queued task is claimed, canceled or failed; a running one finishes, is
#: canceled, or goes back to the queue (retry, lease handed back); finished tasks never change
EXPECTED = {(Q, R), (Q, C), (Q, F), (R, Q), (R, S), (R, F), (R, C)}
PAIRS = list(product(TaskStatus, repeat=2))
ALLOWED_PAIRS = [p for p in PAIRS if p in EXPECTED]
FORBIDDEN_PAIRS = [p for p in PAIRS if p not in EXPECTED]


def _task(status: TaskStatus) -> Task:
    return Task(id="t_1", tenant_id="tenant-a", model="nano-banana", input={}, status=status)


def test_the_table_covers_every_status_with_exactly_the_expected_pairs():
    assert set(ALLOWED) == set(TaskStatus)
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == EXPECTED
    assert len(ALLOWED_PAIRS) == 7
    assert len(FORBIDDEN_PAIRS) == 18


@pytest.mark.parametrize(("current", "to"), ALLOWED_PAIRS, ids=str)
def test_an_allowed_transition_passes_the_check(current, to):
    check_transition(current, to)


@pytest.mark.parametrize(("current", "to"), FORBIDDEN_PAIRS, ids=str)
def test_a_forbidden_transition_raises_invalid_transition(current, to):
    with pytest.raises(InvalidTransition, match=f"from {current} to {to}"):
        check_transition(current, to)


@pytest.mark.parametrize(("current", "to"), ALLOWED_PAIRS, ids=str)
def test_replace_with_an_allowed_status_returns_a_new_task(current, to):
    task = _task(current)
    moved = task.replace(status=to, attempts=2)
    assert (moved.status, moved.attempts) == (to, 2)
    assert (task.status, task.attempts) == (current, 0)
    assert moved.id == task.id


@pytest.mark.parametrize(("current", "to"), FORBIDDEN_PAIRS, ids=str)
def test_replace_with_a_forbidden_status_raises_invalid_transition(current, to):
    with pytest.raises(InvalidTransition):
        _task(current).replace(status=to)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_replace_without_a_status_change_is_never_checked(status):
    task = _task(status)
    assert task.replace(attempts=5).attempts == 5
    assert task.replace(warnings=("w",)).status == status


def test_replace_keeps_every_other_field_and_knows_only_task_fields():
    task = _task(TaskStatus.QUEUED).replace(
        attempts=3, lease_token=7, traceparent="00-x", partial_images=2, warnings=("w",)
    )
    moved = task.replace(status=TaskStatus.RUNNING, lease_owner="wrk_a")
    assert moved == dataclasses.replace(task, status=TaskStatus.RUNNING, lease_owner="wrk_a")
    assert moved is not task and task.lease_owner is None
    with pytest.raises(AttributeError):
        task.replace(no_such_field=1)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_status_cannot_go_to_itself(status):
    with pytest.raises(InvalidTransition):
        _task(status).replace(status=status)


@pytest.mark.parametrize(
    ("status", "ready"), [(Q, False), (R, False), (S, True), (F, True), (C, True)]
)
def test_ready_is_true_exactly_for_finished_statuses(status, ready):
    assert status.ready is ready
    assert _task(status).ready is ready
    assert (status in FINAL) is ready


@pytest.mark.parametrize("status", sorted(FINAL))
def test_a_finished_status_allows_no_transition(status):
    assert ALLOWED[status] == frozenset()


def test_status_values_are_the_api_strings():
    assert [s.value for s in TaskStatus] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "canceled",
    ]


def test_a_new_task_is_queued_due_and_unleased():
    task = _task(Q)
    assert task.status == TaskStatus.QUEUED
    assert (task.attempts, task.max_attempts, task.lease_token) == (0, 3, 0)
    assert (task.lease_owner, task.lease_expires_at, task.started_at) == (None, None, None)
    assert task.created_at.tzinfo is not None
    assert task.run_after.tzinfo is not None


# ---------------------------------------------------------------- ids

_ID = re.compile(r"t_[A-Za-z0-9]{22}")


@pytest.mark.parametrize("prefix", ["t_", "f_", "k_", ""])
def test_new_id_is_the_prefix_and_22_base62_characters(prefix):
    value = new_id(prefix)
    assert value.startswith(prefix)
    rest = value[len(prefix) :]
    assert len(rest) == 22
    assert set(rest) <= set(string.ascii_letters + string.digits)


def test_new_id_is_unique_over_10000_draws_and_uses_all_62_characters():
    draws = [new_id("t_") for _ in range(10_000)]
    assert len(set(draws)) == 10_000
    assert all(_ID.fullmatch(d) for d in draws)
    used = set("".join(d[2:] for d in draws))
    assert used == set(string.ascii_letters + string.digits)


@pytest.mark.parametrize(
    "millis",
    [[0, 9, 10, 35, 36, 61, 62, 3843, 3844], [1_795_000_000_000 + i for i in range(0, 5000, 7)]],
)
def test_a_sorted_id_sorts_after_every_id_made_in_an_earlier_millisecond(monkeypatch, millis):
    import imagehub.tasks as tasks

    made = []
    for value in millis:
        monkeypatch.setattr(tasks.time, "time_ns", lambda value=value: value * 1_000_000 + 999)
        made.append(tasks.new_sorted_id("tsk_"))
    assert sorted(made) == made  # byte order, as SQLite and a C-collated index compare text
    assert all(_ID.fullmatch(i.replace("tsk_", "t_")) for i in made)


def test_a_sorted_id_keeps_its_random_tail():
    from imagehub.tasks import new_sorted_id

    draws = [new_sorted_id("tsk_") for _ in range(10_000)]
    assert len(set(draws)) == 10_000
    tails = {d[4 + 8 :] for d in draws}
    assert len(tails) == 10_000 and {len(t) for t in tails} == {14}


# ---------------------------------------------------------------- output


def test_task_output_round_trips_through_a_dict():
    out = TaskOutput(
        images=(
            OutputImage("image/png", "a.png", 10, 1024, 768, file_id="f_" + "a" * 22 + ".png"),
            OutputImage("image/webp", "b.webp", 5, 8, 8, data_uri="data:image/webp;base64,AA"),
        ),
        description="two",
        purged=True,
    )
    assert TaskOutput.from_dict(out.to_dict()) == out


def test_a_purged_output_keeps_all_but_its_images():
    from imagehub.tasks import Grounding, OutputImage, Source, TaskOutput
    from imagehub.webhooks.sender import task_body

    grounding = Grounding(queries=("q",), search_entry_point="<p>", sources=(Source("u", "t"),))
    image = OutputImage("image/png", "a.png", 3, 1, 1, data_uri="data:image/png;base64,AAA")
    output = TaskOutput((image,), "text", grounding=grounding)
    assert output.purge() == TaskOutput((), "text", purged=True, grounding=grounding)
    task = Task(id="tsk_1", tenant_id="t", model="nano-banana", input={}, output=output)
    body = json.loads(task_body(task, "http://hub"))
    assert body["output"]["images"] == [] and body["output"]["grounding"]["queries"] == ["q"]


def test_a_forked_process_draws_other_ids_than_its_parent():
    """Random bytes are read in bulk: a child must not hand out the parent's unused ones."""
    import os

    new_id("t_")  # the parent holds unused random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_id("t_") for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [new_id("t_") for _ in range(3)]
    assert len(child) == 3
    assert not set(child) & set(parent)
