"""The SDK's AsyncClient against the real app in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagehub.client import (
    AlreadyFinished,
    AsyncClient,
    HubUnreachable,
    InvalidInput,
    NotFound,
    Overloaded,
    TaskFailed,
    Unauthorized,
    WaitTimeout,
)
from imagehub.errors import ContentPolicyViolation
from imagehub.testing import ScriptedProvider, tiny_png
from tests.sdk.conftest import BASE_URL, InProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_generate_then_save_writes_the_images_named_after_the_task(
    demo_app: InProcess, tmp_path: Path
):
    task = await demo_app.client.generate(
        "nano-banana-2", prompt="a lighthouse at dusk", aspect_ratio="16:9", num_images=2
    )
    assert task.status == "succeeded" and task.provider == "demo"
    assert task.input["aspect_ratio"] == "16:9"
    paths = await demo_app.client.save(task, tmp_path / "out")
    assert [p.name for p in paths] == [f"{task.task_id}-0.png", f"{task.task_id}-1.png"]
    assert task.output is not None
    for path, image in zip(paths, task.output.images, strict=True):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) == image.file_size


async def test_submit_answers_at_once_and_wait_long_polls_until_ready(hub_app: InProcess):
    task = await hub_app.client.submit("nano-banana", prompt="x", metadata={"ref": "r1"})
    assert task.task_id.startswith("tsk_") and task.metadata == {"ref": "r1"}
    done = await hub_app.client.wait(task.task_id, timeout=30)
    assert done.ready and done.status == "succeeded"
    waits = [r.url.params.get("wait") for r in hub_app.transport.requests if r.method == "GET"]
    assert waits and all(float(w) > 1 for w in waits), "wait() must long-poll"


async def test_wait_times_out_with_few_requests_not_a_busy_loop(
    hub_app: InProcess, provider: ScriptedProvider
):
    provider.delay = 10
    task = await hub_app.client.submit("nano-banana", prompt="slow")
    with pytest.raises(WaitTimeout) as caught:
        await hub_app.client.wait(task.task_id, timeout=0.5)
    assert caught.value.task.task_id == task.task_id and not caught.value.task.ready
    assert isinstance(caught.value, TimeoutError)
    assert len(hub_app.transport.paths("GET")) <= 2


async def test_invalid_input_carries_every_failing_field(hub_app: InProcess):
    with pytest.raises(InvalidInput) as caught:
        await hub_app.client.submit("nano-banana", prompt="x", aspect_ratio="7:3", num_images=9)
    locs = sorted(tuple(d["loc"]) for d in caught.value.details)
    assert locs == [("input", "aspect_ratio"), ("input", "num_images")]
    assert caught.value.status == 422


async def test_a_failed_task_raises_task_failed_from_generate_with_its_code(
    hub_app: InProcess, provider: ScriptedProvider
):
    provider.script = [ContentPolicyViolation("blocked by the scripted provider")]
    with pytest.raises(TaskFailed) as caught:
        await hub_app.client.generate("nano-banana", prompt="x")
    failed = caught.value
    assert failed.error_code == "content_policy_violation"
    assert failed.task.status == "failed"
    assert isinstance(failed.__cause__, ContentPolicyViolation)
    assert "blocked by the scripted provider" in str(failed)


async def test_wait_returns_a_failed_task_unless_asked_to_raise(
    hub_app: InProcess, provider: ScriptedProvider
):
    provider.script = [ContentPolicyViolation(), ContentPolicyViolation()]
    first = await hub_app.client.submit("nano-banana", prompt="x")
    assert (await hub_app.client.wait(first.task_id)).status == "failed"
    second = await hub_app.client.submit("nano-banana", prompt="y")
    with pytest.raises(TaskFailed):
        await hub_app.client.wait(second.task_id, raise_on_failure=True)


async def test_unknown_task_is_not_found_and_a_bad_key_is_unauthorized(hub_app: InProcess):
    with pytest.raises(NotFound):
        await hub_app.client.get("tsk_doesnotexist")
    transport = hub_app.transport
    async with AsyncClient(BASE_URL, "ih_wrong", transport=transport) as stranger:
        with pytest.raises(Unauthorized):
            await stranger.models()


async def test_cancel_a_running_task_then_cancel_again_is_already_finished(
    hub_app: InProcess, provider: ScriptedProvider
):
    provider.delay = 10
    task = await hub_app.client.submit("nano-banana", prompt="slow")
    canceled = await hub_app.client.cancel(task.task_id)
    assert canceled.status == "canceled" and canceled.error is not None
    with pytest.raises(AlreadyFinished):
        await hub_app.client.cancel(task.task_id)
    with pytest.raises(TaskFailed) as caught:
        await hub_app.client.save(canceled, "unused")
    assert caught.value.error_code == "canceled"


async def test_list_iterates_over_every_page_lazily(hub_app: InProcess):
    ids = {(await hub_app.client.submit("nano-banana", prompt=f"p{i}")).task_id for i in range(5)}
    hub_app.transport.requests.clear()
    pages = hub_app.client.list(page_size=2)
    assert hub_app.transport.requests == [], "nothing is fetched before iteration"
    first = await anext(pages)
    assert len(hub_app.transport.requests) == 1 and first.task_id in ids
    rest = [task async for task in pages]
    assert {first.task_id, *(t.task_id for t in rest)} == ids
    assert len(hub_app.transport.paths("GET")) == 3
    listed = [t async for t in hub_app.client.list(model="nano-banana-2")]
    assert listed == []


async def test_upload_a_path_and_bytes_then_edit_with_the_urls(demo_app: InProcess, tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(tiny_png(64, 48))
    from_path = await demo_app.client.upload(path)
    from_bytes = await demo_app.client.upload(tiny_png(32, 32, (10, 200, 10)))
    assert from_path.url.startswith(f"{BASE_URL}/hub/v1/files/")
    task = await demo_app.client.generate(
        "nano-banana/edit", prompt="make it blue", image_urls=[from_path.url, from_bytes.url]
    )
    assert task.status == "succeeded"
    with pytest.raises(InvalidInput):
        await demo_app.client.upload(b"not an image")


async def test_models_and_one_model_are_typed(hub_app: InProcess):
    models = await hub_app.client.models()
    assert len(models) == 8 and {m.capability for m in models} == {
        "text-to-image",
        "image-to-image",
    }
    edit = await hub_app.client.model("nano-banana/edit")
    assert edit.id == "nano-banana/edit"
    assert any(p.name == "image_urls" and p.required for p in edit.parameters)
    with pytest.raises(NotFound):
        await hub_app.client.model("no-such-model")


async def test_sync_mode_images_download_from_their_data_uri(hub_app: InProcess, tmp_path):
    task = await hub_app.client.generate("nano-banana", prompt="x", sync_mode=True)
    assert task.output is not None and task.output.images[0].url.startswith("data:image/png")
    assert (await hub_app.client.download(task.output.images[0])).startswith(PNG_MAGIC)
    again = await hub_app.client.get(task.task_id)
    with pytest.raises(ValueError, match="sync_mode"):
        await hub_app.client.save(again, tmp_path)


async def test_downloads_never_send_the_api_key(hub_app: InProcess):
    task = await hub_app.client.generate("nano-banana", prompt="x")
    assert task.output is not None
    await hub_app.client.download(task.output.images[0])
    download = hub_app.transport.requests[-1]
    assert "/hub/v1/files/" in download.url.path
    assert "authorization" not in download.headers
    assert hub_app.transport.requests[0].headers["authorization"].startswith("Bearer ")


async def test_a_submit_whose_answer_was_lost_is_retried_and_makes_one_task(
    hub_app: InProcess,
):
    hub_app.transport.faults = ["drop"]
    task = await hub_app.client.submit("nano-banana", prompt="once")
    posts = [r for r in hub_app.transport.requests if r.method == "POST"]
    assert len(posts) == 2
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    history = [t async for t in hub_app.client.list()]
    assert [t.task_id for t in history] == [task.task_id]


async def test_each_submit_gets_its_own_key_and_an_explicit_key_is_reused(hub_app: InProcess):
    a = await hub_app.client.submit("nano-banana", prompt="same")
    b = await hub_app.client.submit("nano-banana", prompt="same")
    assert a.task_id != b.task_id
    c = await hub_app.client.submit("nano-banana", prompt="k", idempotency_key="mine-1")
    d = await hub_app.client.submit("nano-banana", prompt="k", idempotency_key="mine-1")
    assert c.task_id == d.task_id


async def test_refused_connections_and_503_are_retried_a_bounded_number_of_times(
    hub_app: InProcess,
):
    hub_app.transport.faults = ["refuse", "503"]
    assert len(await hub_app.client.models()) == 8
    assert len(hub_app.transport.requests) == 3
    hub_app.transport.requests.clear()
    hub_app.transport.faults = ["503"] * 5
    with pytest.raises(Overloaded):
        await hub_app.client.models()
    assert len(hub_app.transport.requests) == 3  # the first try and two retries
    hub_app.transport.faults = ["refuse"] * 5
    with pytest.raises(HubUnreachable):
        await hub_app.client.models()


async def test_a_cancel_whose_answer_was_lost_is_not_sent_twice(
    hub_app: InProcess, provider: ScriptedProvider
):
    provider.delay = 10
    task = await hub_app.client.submit("nano-banana", prompt="slow")
    hub_app.transport.faults = ["drop"]
    with pytest.raises(HubUnreachable):
        await hub_app.client.cancel(task.task_id)
    assert len(hub_app.transport.paths("POST")) == 2  # the submit and one cancel
    assert (await hub_app.client.get(task.task_id)).status == "canceled"
