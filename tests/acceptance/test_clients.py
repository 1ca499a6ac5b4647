"""The SDK, the CLI and the official OpenAI client against a real `imagehub serve` process."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from imagehub.catalog import Catalog
from imagehub.client import Client, TaskFailed
from imagehub.client.examples import python_example
from imagehub.testing import tiny_png
from tests.acceptance.conftest import KEY, Server
from tests.unit.test_docs import doc


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: starting one takes a second or two."""
    server = Server(tmp_path_factory.mktemp("hub")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idle_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without a worker: its tasks stay queued."""
    server = Server(tmp_path_factory.mktemp("idle")).start("--no-worker")
    yield server
    server.stop()


def client_env(server: Server, key: str = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEHUB_")}
    return {**env, "IMAGEHUB_URL": server.url, "IMAGEHUB_API_KEY": key}


def cli(server: Server, *args: str, cwd: Path | None = None, key: str = KEY):
    return subprocess.run(
        [sys.executable, "-m", "imagehub.cli", *args],
        env=client_env(server, key),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


# -- the SDK


def test_the_docs_python_example_generates_and_saves_an_image(hub: Server, tmp_path: Path):
    code = section_code("Python SDK", "python")
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=client_env(hub),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    [saved] = (tmp_path / "out").iterdir()
    assert re.fullmatch(r"tsk_\w+-0\.png", saved.name) and saved.name in run.stdout
    assert image_size(saved) == (1376, 768)


def test_the_sdk_example_of_a_catalog_model_runs(hub: Server, tmp_path: Path):
    model = Catalog.load().get("nano-banana-pro")
    assert model is not None
    code = python_example(model.id, model.example)
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=client_env(hub),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert image_size(next((tmp_path / "out").iterdir())) == (2048, 2048)


def section_code(title: str, language: str) -> str:
    """The first `language` block of the docs page `title` (docs/sdk.md)."""
    text = doc({"Python SDK": "sdk.md"}[title])
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_blocking_client_against_serve(hub: Server, tmp_path: Path):
    with Client(hub.url, KEY) as client:
        upload = client.upload(tiny_png(80, 40))
        task = client.generate(
            "gpt-image-2/edit", prompt="x", image_urls=[upload.url], image_size="square_hd"
        )
        [path] = client.save(task, tmp_path)
        assert image_size(path) == (1024, 1024)
        assert task.task_id in [t.task_id for t in client.list(model="gpt-image-2/edit")]
        queued = client.submit("nano-banana", prompt="y")
        assert client.wait(queued.task_id, timeout=30).status == "succeeded"


def test_the_blocking_client_raises_task_failed_for_a_canceled_task(idle_hub: Server):
    with Client(idle_hub.url, KEY) as client:
        task = client.submit("nano-banana", prompt="never runs")
        client.cancel(task.task_id)
        with pytest.raises(TaskFailed) as caught:
            client.wait(task.task_id, raise_on_failure=True)
    assert caught.value.error_code == "canceled"


# -- the CLI


def test_cli_generate_saves_the_images_and_prints_their_paths(hub: Server, tmp_path: Path):
    run = cli(
        hub,
        "generate",
        "-m",
        "nano-banana-2",
        "a lighthouse at dusk",
        "--param",
        "aspect_ratio=16:9",
        "--param",
        "resolution=2K",
        "--param",
        "num_images=2",
        "-o",
        "out",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    paths = run.stdout.split()
    assert len(paths) == 2 and run.stderr == "", "no status line when stderr is not a terminal"
    for index, printed in enumerate(paths):
        path = tmp_path / printed
        assert re.fullmatch(rf"out/tsk_\w+-{index}\.png", printed)
        assert image_size(path) == (2752, 1536)


def test_cli_generate_json_prints_the_task(hub: Server, tmp_path: Path):
    run = cli(
        hub,
        "generate",
        "-m",
        "gpt-image-2",
        "x",
        "--param",
        "image_size=1024x768",
        "--param",
        "output_format=webp",
        "--json",
        "-o",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    task = json.loads(run.stdout)
    assert task["status"] == "succeeded" and task["input"]["image_size"] == {
        "width": 1024,
        "height": 768,
    }
    assert (tmp_path / f"{task['task_id']}-0.webp").is_file()


def test_cli_edit_uploads_local_files(hub: Server, tmp_path: Path):
    (tmp_path / "in.png").write_bytes(tiny_png(64, 64))
    run = cli(
        hub,
        "edit",
        "-m",
        "nano-banana-2",
        "--image",
        "in.png",
        "make it snowy",
        "-o",
        ".",
        "--json",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    task = json.loads(run.stdout)
    assert task["model"] == "nano-banana-2/edit"
    assert task["input"]["image_urls"][0].startswith(f"{hub.url}/hub/v1/files/f_")


def test_cli_tasks_and_models(hub: Server):
    submitted = cli(hub, "generate", "listed prompt", "--no-wait")
    task_id = submitted.stdout.strip()
    assert submitted.returncode == 0 and task_id.startswith("tsk_")
    waited = cli(hub, "tasks", "wait", task_id)
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "succeeded"
    listed = cli(hub, "tasks", "list", "--limit", "50")
    assert task_id in listed.stdout and "listed prompt" in listed.stdout
    lines = cli(hub, "tasks", "list", "--json", "--limit", "0").stdout.splitlines()
    assert task_id in [json.loads(line)["task_id"] for line in lines]
    assert json.loads(cli(hub, "tasks", "get", task_id).stdout)["task_id"] == task_id
    models = cli(hub, "models")
    assert models.returncode == 0 and models.stdout.count("image-to-image") == 4
    one = cli(hub, "models", "gpt-image-2/edit")
    assert "PARAMETER" in one.stdout and re.search(r"mask_url\s+string", one.stdout)
    assert "imagehub edit -m gpt-image-2/edit --image" in one.stdout


@pytest.mark.parametrize("command", [["tasks", "list"], ["tasks", "get"], ["generate", "--json"]])
def test_cli_output_into_a_closed_pipe_stops_quietly(
    hub: Server, command: list[str], tmp_path: Path
):
    task_id = cli(hub, "generate", "piped prompt", "--no-wait").stdout.strip()
    args = [*command, task_id] if command[-1] == "get" else command
    if command[0] == "generate":
        args = [*command, "piped prompt"]
    read, write = os.pipe()
    os.close(read)  # `| head` that has already read its lines and gone
    try:
        run = subprocess.run(
            [sys.executable, "-m", "imagehub.cli", *args],
            env=client_env(hub),
            cwd=tmp_path,  # `generate` saves its image here
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert run.returncode == 141
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr


def test_cli_help_lists_each_model_s_parameters_from_the_catalog(hub: Server):
    run = cli(hub, "generate", "--help")
    assert run.returncode == 0
    assert re.search(r"nano-banana-2\n(.*\n)*?\s+resolution\s+string\s+0\.5K 1K 2K 4K", run.stdout)
    assert "7 timed out waiting" in run.stdout


@pytest.mark.parametrize(
    ("args", "key", "code", "message"),
    [
        (["generate", "x", "--param", "aspect_ratio=7:3"], KEY, 2, "must be one of"),
        (["generate", "x", "--param", "colour=red"], KEY, 2, "no such parameter"),
        (
            ["generate", "-m", "gpt-image-2", "x", "--param", "image_size=100x100"],
            KEY,
            2,
            "input.image_size: both sides must be multiples of 16",
        ),
        (["models"], "ih_wrong", 3, "IMAGEHUB_API_KEY"),
        (["tasks", "get", "tsk_doesnotexist"], KEY, 4, "no task"),
        (["edit", "--image", "missing.png", "x"], KEY, 2, "no such file"),
    ],
)
def test_cli_exit_codes(hub: Server, tmp_path: Path, args, key, code, message):
    run = cli(hub, *args, key=key, cwd=tmp_path)
    assert run.returncode == code, run.stderr
    assert message in run.stderr and run.stdout == ""


def test_cli_exit_code_when_the_hub_is_unreachable(tmp_path: Path):
    server = Server(tmp_path)  # never started: nothing listens on its port
    run = cli(server, "models")
    assert run.returncode == 5 and "IMAGEHUB_URL" in run.stderr


def test_cli_timeout_then_cancel_then_failed(idle_hub: Server):
    timed_out = cli(idle_hub, "generate", "x", "--timeout", "0.5")
    assert timed_out.returncode == 7, timed_out.stderr
    task_id = re.search(r"tasks wait (tsk_\w+)", timed_out.stderr).group(1)  # type: ignore[union-attr]
    canceled = cli(idle_hub, "tasks", "cancel", task_id)
    assert json.loads(canceled.stdout)["status"] == "canceled"
    waited = cli(idle_hub, "tasks", "wait", task_id)
    assert waited.returncode == 1 and "canceled" in waited.stderr


def test_cli_shows_a_live_progress_bar_on_a_terminal(idle_hub: Server):
    """stdout and stderr are a pseudo-terminal: the bar shows the task, its place in the queue
    and its ETA, and is cleared before the error."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagehub.cli", "generate", "x", "--timeout", "1"],
        env=client_env(idle_hub),
        stdout=child,
        stderr=child,
    )
    os.close(child)
    seen = b""
    while select.select([main], [], [], 30)[0]:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(30) == 7
    os.close(main)
    text = seen.decode()
    bars = re.findall(r"(tsk_\w+) queued, (\d+) ahead", text)
    assert bars and len({task_id for task_id, _ in bars}) == 1
    assert "ETA ~" in text or int(bars[0][1]) > 0  # first in line: the default time
    assert "imagehub: task " in text
    assert text.rindex(" ahead") < text.index("imagehub: task "), "cleared before the error"


# -- the OpenAI client


def test_the_openai_client_works_by_changing_only_its_base_url_and_key(hub: Server):
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=KEY)
    result = client.images.generate(model="gpt-image-2", prompt="a lighthouse", size="1024x1536")
    assert result.data is not None and result.data[0].b64_json is not None
    with Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))) as image:
        assert image.size == (1024, 1536)
    edited = client.images.edit(
        model="gpt-image-2",
        image=("in.png", tiny_png(64, 64), "image/png"),
        prompt="x",
        response_format="url",
    )
    assert edited.data is not None and edited.data[0].url is not None
    assert edited.data[0].url.startswith(f"{hub.url}/hub/v1/files/")
    with pytest.raises(openai.BadRequestError, match="quality"):
        client.images.generate(model="gpt-image-2", prompt="x", quality="ultra")  # type: ignore[arg-type]
    client.close()
