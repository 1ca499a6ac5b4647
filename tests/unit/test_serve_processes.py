"""The pieces of `serve --workers N` and `imagehub worker` that need no child process."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from imagehub.cli import _port_in_use
from imagehub.cli.processes import listening_socket
from imagehub.cli.worker import run_on_uvloop


def test_the_worker_process_runs_on_uvloop():
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert run_on_uvloop(loop_type()) is uvloop.Loop


def test_the_children_sockets_share_a_port_no_other_server_can_take():
    first = listening_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = listening_socket("127.0.0.1", port)
    try:
        assert second.getsockname()[1] == port and second.get_inheritable()
        # a second `serve` on the port is told so before it does anything
        assert "already in use" in (_port_in_use("127.0.0.1", port) or "")
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.bind(("127.0.0.1", port))
    finally:
        first.close()
        second.close()


def test_several_processes_need_a_shared_store(tmp_path, capsys, monkeypatch):
    from imagehub.cli import main

    monkeypatch.setenv("IMAGEHUB_DATABASE_URL", "memory://")
    assert main(["serve", "--workers", "2", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert "memory://" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything was made
