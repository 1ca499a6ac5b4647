"""A PostgreSQL server of the fault tests' own: `initdb` into a temporary folder, started on a
free loopback port with trust auth, stopped and started by the tests, removed afterwards.

The fault tests stop PostgreSQL mid-run; they never touch a server anyone else uses. PostgreSQL
refuses to run as root, so as root the folder is handed to the `postgres` user and every
command runs as that user (`runuser`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.services import free_port

SEARCH = "/usr/lib/postgresql/*/bin"
ACCOUNT = "postgres"


def find_bin_dir() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: the newest Debian-style install, else on PATH."""
    found = [Path(p) for p in glob.glob(SEARCH) if (Path(p) / "initdb").exists()]
    if found:
        return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class LocalPostgres:
    """One private cluster; `url` reaches its maintenance database as user `postgres`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # not under pytest's tmp_path: that one is private to root, the server's user can't enter
        self.root = Path(tempfile.mkdtemp(prefix="imagehub-fault-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(ACCOUNT)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", ACCOUNT, "--"]

    def run(self, *command: str, timeout: float = 120) -> str:
        argv = [*self.as_user, str(self.bin_dir / command[0]), *command[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}\n{log}")
        return done.stdout

    def init(self) -> LocalPostgres:
        self.run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        return self

    def start(self) -> None:
        # loopback only, no Unix socket (no shared /var/run folder needed), no durability cost
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off"
        )
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        argv = [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0

    def remove(self) -> None:
        """Stops the server if it runs, and deletes its folder."""
        try:
            if self.data.exists() and self.running:
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
