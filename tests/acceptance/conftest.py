from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

KEY = "ih_acceptance_key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`imagehub serve` as a real subprocess."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        #: a command the server runs under (e.g. `prlimit --nofile=...`)
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "IMAGEHUB_ADMIN_KEY": KEY, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.log = data_dir / "server.log"

    def start(self, *args: str) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [*self.prefix, sys.executable, "-m", "imagehub.cli", "serve"]
        command += ["--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), "--log-level", "warning", *args]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def client(self, key: str = KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    class Tracked(Server):
        def start(self, *args: str) -> Server:
            started.append(self)
            return super().start(*args)

    yield Tracked
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)


@pytest.fixture
def server(server_factory: type[Server], tmp_path: Path) -> Server:
    return server_factory(tmp_path / "data").start()
