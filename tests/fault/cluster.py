"""Hub processes for the scale-out tests: API-only `imagehub serve --no-worker` processes and
worker-only processes (`tests.fault.worker_entry`, the real worker with a scripted upstream)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.acceptance.conftest import KEY, Server

ROOT = Path(__file__).resolve().parents[2]


class Api(Server):
    """`imagehub serve --no-worker`."""

    def start(self, *args: str) -> Api:
        super().start("--no-worker", *args)
        return self


class Worker:
    """A worker-only process: the real worker loop, a scripted upstream with `delay`."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str, delay: float) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "IMAGEHUB_DATA_DIR": str(data_dir), **env}
        self.name, self.delay = name, delay
        self.log = data_dir / f"{name}.log"
        self.calls = data_dir / f"{name}.calls"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *args: str) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        seen = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "tests.fault.worker_entry", "--delay", str(self.delay)]
        command += ["--calls-log", str(self.calls), "--log-level", "info", *args]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + 30
        while "running, up to" not in self.log.read_text()[seen:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def ensure_dead(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)


def client(api: Server) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
