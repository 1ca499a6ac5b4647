"""The command line's rough edges, as a newcomer meets them: closed pipes, busy ports, help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from imagehub.catalog import Catalog
from imagehub.cli import main


def _closed_pipe_run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a stdout whose reader is already gone, as `imagehub ... | head -0`."""
    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE: no race with the reader
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEHUB_")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "imagehub.cli", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["routes"], 141),  # as a command stopped by SIGPIPE: `set -o pipefail` sees it
        (["generate", "--help"], 0),  # argparse's own: help is never an error
    ],
    ids=["routes", "help"],
)
def test_a_closed_pipe_ends_the_command_quietly(args, code):
    run = _closed_pipe_run(*args)
    assert run.returncode == code
    assert run.stderr == ""


def test_serve_on_a_busy_port_says_so_before_making_anything(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEHUB_")}
        run = subprocess.run(
            [sys.executable, "-m", "imagehub.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in run.stderr
    assert "--port" in run.stderr and "IMAGEHUB_PORT" in run.stderr
    assert "ih_" not in run.stdout + run.stderr and "admin" not in run.stderr
    assert list(tmp_path.iterdir()) == []  # no data folder, no database, no key


def test_generate_help_names_the_image_size_presets(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    gpt = out.split("  gpt-image-2\n", 1)[1]
    line = next(line for line in gpt.splitlines() if line.strip().startswith("image_size"))
    for preset in Catalog.load().presets:
        assert preset in line
    assert "a preset," not in out
