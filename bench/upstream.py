"""The hub in front of a fake upstream over real HTTP, side by side with LiteLLM's proxy.

Three processes per run, all on 127.0.0.1: a fake OpenAI Images API (`fake` below: answers
`POST /v1/images/generations` after a fixed delay with a small PNG), `imagehub serve` routed to
it with `IMAGEHUB_OPENAI_API_KEY`/`IMAGEHUB_OPENAI_BASE_URL`, and LiteLLM's proxy routed to the
same fake (installed into its own virtualenv on first use). This process is the load client.

Scenarios:
  throughput  at each concurrency, clients send requests back to back: to the hub as
              `POST /hub/v1/tasks` with `Prefer: wait=30` (the task is ready in the answer), to
              LiteLLM as `POST /v1/images/generations`. Reported: requests/s, latency, and the
              overhead above the upstream's own delay.
  capacity    5,000 tasks submitted at once against a 20 s upstream; while they are in flight,
              `GET /hub/v1/tasks/{id}` latency and the hub's peak RSS.

    .venv/bin/python bench/upstream.py                 # everything (about 4 minutes)
    .venv/bin/python bench/upstream.py --skip-litellm  # the hub only
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

import proccpu

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
HOST = "127.0.0.1"
HUB_KEY = "ih_bench_upstream_key"
LITELLM_KEY = "sk-" + "5e" * 32  # LiteLLM's proxy refuses to start without a master key
LITELLM_VENV = Path(tempfile.gettempdir()) / "litellm-venv"
#: the release every LiteLLM figure in bench/README.md was measured against
LITELLM_VERSION = "1.108.7"
HUB_BODY = {"model": "gpt-image-2", "input": {"prompt": "bench", "quality": "low"}}
LITELLM_BODY = {"model": "gpt-image-2", "prompt": "bench", "n": 1, "size": "1024x768"}


# ---------------------------------------------------------------- the fake upstream

JITTER_HELP = "the upstream's delay varies by this fraction either way, same mean (0: fixed)"


def delays(delay: float, jitter: float) -> Callable[[], float]:
    """The fake upstream's next delay: `delay`, or with `jitter` j one drawn uniformly from
    `delay` * [1 - j, 1 + j] (the same mean; seeded, so the same delays in every run)."""
    draw = random.Random(0)
    return lambda: delay * (1 + jitter * draw.uniform(-1, 1))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


async def fake_upstream(port: int, delay: float, jitter: float = 0.0) -> None:
    """A minimal OpenAI Images API: every POST answers one image after `delay` seconds (varied
    by `jitter`: see `delays`)."""
    answer = json.dumps(
        {
            "created": 1,
            "data": [{"b64_json": base64.b64encode(_png()).decode()}],
            "usage": {"input_tokens": 10, "output_tokens": 272, "total_tokens": 282},
        }
    ).encode()
    stats = {"in_flight": 0, "max_in_flight": 0, "served": 0}
    next_delay = delays(delay, jitter)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                await _read_body(reader, head)
                if head.startswith("GET /stats"):
                    writer.write(_response(json.dumps(stats).encode()))
                    continue
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
                await asyncio.sleep(next_delay())
                stats["in_flight"] -= 1
                stats["served"] += 1
                writer.write(_response(answer))
        writer.close()

    server = await asyncio.start_server(connection, HOST, port, backlog=8192)
    async with server:
        await server.serve_forever()


def _response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


async def _read_body(reader: asyncio.StreamReader, head: str) -> bytes:
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readline()).strip() or b"0", 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(chunks)
    return await reader.readexactly(int(headers.get("content-length", "0")))


# ---------------------------------------------------------------- a keep-alive client


class Connection:
    """One HTTP/1.1 keep-alive connection: tiny and fast, so the client is not the bottleneck."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(
        self, method: str, path: str, body: Any = None, extra: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self._streams
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(extra or {})}.items()]
        lines += [f"Content-Length: {len(payload)}", "Content-Type: application/json"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        data = await _read_body(reader, head)
        if "connection: close" in head.lower():
            self.close()
        return int(head.split(" ", 2)[1]), json.loads(data) if data else None

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    #: several serving processes below it (`--workers N`): memory is the whole tree's
    tree: bool = False

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory in MiB, from /proc (summed over the tree)."""
        current = peak = 0.0
        root = self.process.pid
        for pid in proccpu.descendants(root) if self.tree else [root]:
            fields = {}
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
            current += int(fields["VmRSS"].split()[0]) / 1024
            peak += int(fields["VmHWM"].split()[0]) / 1024
        return current, peak

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _healthy(port: int, path: str, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        conn = Connection(port, {})
        try:
            status, _ = await conn.call("GET", path)
            if status == 200:
                return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing healthy on port {port} after {seconds:g} s")


def start_fake(delay: float, log: Path, jitter: float = 0.0) -> Proc:
    port = _free_port()
    cmd = [PY, str(Path(__file__)), "fake", "--port", str(port), "--delay", str(delay)]
    cmd += ["--jitter", str(jitter)]
    process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return Proc("fake", process, port)


def start_hub(fake: Proc, data_dir: Path, concurrency: int, log: Path, workers: int = 1) -> Proc:
    port = _free_port()
    env = {
        **os.environ,
        "IMAGEHUB_OPENAI_API_KEY": "sk-bench",
        "IMAGEHUB_OPENAI_BASE_URL": f"http://{HOST}:{fake.port}/v1",
        "IMAGEHUB_DEMO": "false",
        "IMAGEHUB_ADMIN_KEY": HUB_KEY,
        "IMAGEHUB_WORKER_CONCURRENCY": str(concurrency),
    }
    cmd = [PY, "-m", "imagehub.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--log-level", "warning", "--workers", str(workers)]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return Proc("imagehub", process, port, tree=workers > 1)


def install_litellm() -> Path:
    """LiteLLM's proxy in its own virtualenv (created once, reused)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
        subprocess.run([PY, "-m", "venv", str(LITELLM_VENV)], check=True)
        package = f"litellm[proxy]=={LITELLM_VERSION}"
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", package]
        subprocess.run(pip, check=True)
    return binary


def start_litellm(fake: Proc, workdir: Path, log: Path, workers: int = 1) -> Proc:
    port = _free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-image-2\n"
        "    litellm_params:\n"
        "      model: openai/gpt-image-2\n"
        f"      api_base: http://{HOST}:{fake.port}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
        "  request_timeout: 600\n"
        "  set_verbose: false\n"
    )
    cmd = [str(install_litellm()), "--config", str(config), "--host", HOST, "--port", str(port)]
    cmd += ["--num_workers", str(workers)]
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY}
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return Proc("litellm", process, port, tree=workers > 1)


# ---------------------------------------------------------------- scenarios


@dataclass
class Result:
    target: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def percentile(self, p: int) -> float:
        ms = sorted(x * 1000 for x in self.latencies)
        q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
        return q[p - 1]

    def row(self, upstream_p50_ms: float) -> dict[str, Any]:
        """The figures; overhead is the p50 above the upstream's own p50 (measured directly)."""
        p50 = self.percentile(50)
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "requests": len(self.latencies),
            "errors": len(self.errors),
            "per_s": round(len(self.latencies) / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(p50, 2),
            "p99_ms": round(self.percentile(99), 2),
            "p50_overhead_ms": round(p50 - upstream_p50_ms, 2),
        }


Request = Callable[[Connection], Awaitable[None]]


async def hub_request(conn: Connection) -> None:
    status, task = await conn.call("POST", "/hub/v1/tasks", HUB_BODY, {"Prefer": "wait=30"})
    while status in (200, 202) and not task["ready"]:
        status, task = await conn.call("GET", f"/hub/v1/tasks/{task['task_id']}?wait=30")
    if status != 200 or task["status"] != "succeeded":
        raise RuntimeError(f"HTTP {status}: {str(task)[:200]}")


async def direct_request(conn: Connection) -> None:
    status, _ = await conn.call("POST", "/v1/images/generations", LITELLM_BODY)
    if status != 200:
        raise RuntimeError(f"HTTP {status}")


async def litellm_request(conn: Connection) -> None:
    status, body = await conn.call("POST", "/v1/images/generations", LITELLM_BODY)
    if status != 200 or not body.get("data"):
        raise RuntimeError(f"HTTP {status}: {str(body)[:200]}")


async def closed_loop(
    target: str, port: int, request: Request, concurrency: int, count: int, headers: dict[str, str]
) -> Result:
    """`concurrency` clients, each sending its next request as soon as the last one answered."""
    result = Result(target, concurrency)
    remaining = iter(range(count))
    conns = [Connection(port, headers) for _ in range(concurrency)]

    async def client(conn: Connection) -> None:
        for _ in remaining:
            started = time.perf_counter()
            try:
                await request(conn)
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            result.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(conn) for conn in conns))
    result.elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return result


def _count(concurrency: int, scale: float) -> int:
    return max(50, int({1: 200, 32: 3000, 256: 6000}.get(concurrency, 2000) * scale))


async def throughput(args: argparse.Namespace, workdir: Path, log: Path) -> list[dict[str, Any]]:
    """Each target alone in front of the same fake upstream: the hub first, then LiteLLM."""
    fake = start_fake(args.delay, log, args.jitter)
    try:
        await _healthy(fake.port, "/stats", 10, fake.process)
        # the upstream's own latency, as this client sees it without anything in between
        await closed_loop("upstream", fake.port, direct_request, 1, 20, {})
        direct = await closed_loop("upstream", fake.port, direct_request, 1, 300, {})
        upstream_p50 = direct.percentile(50)
        rows = [direct.row(upstream_p50)]
        print(json.dumps(rows[0]), flush=True)
        hub = start_hub(fake, workdir / "hub-data", max(args.concurrency), log, args.workers)
        auth = {"Authorization": f"Bearer {HUB_KEY}"}
        rows += await _measure(args, hub, "/healthz", hub_request, auth, upstream_p50)
        if not args.skip_litellm:
            litellm = start_litellm(fake, workdir, log, args.workers)
            auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
            rows += await _measure(
                args, litellm, "/health/liveliness", litellm_request, auth, upstream_p50
            )
        return rows
    finally:
        fake.stop()


async def _measure(
    args: argparse.Namespace,
    proc: Proc,
    health: str,
    request: Request,
    headers: dict[str, str],
    upstream_p50: float,
) -> list[dict[str, Any]]:
    rows = []
    try:
        await _healthy(proc.port, health, 180, proc.process)
        for concurrency in args.concurrency:
            count = _count(concurrency, args.scale)
            warm = max(concurrency, count // 10)
            await closed_loop(proc.name, proc.port, request, concurrency, warm, headers)
            result = await closed_loop(proc.name, proc.port, request, concurrency, count, headers)
            row = result.row(upstream_p50)
            row["peak_rss_mib"] = round(proc.rss_mib()[1])
            rows.append(row)
            print(json.dumps(row), flush=True)
            for error in result.errors[:3]:
                print(f"  error: {error}", flush=True)
    finally:
        proc.stop()
    return rows


async def capacity(args: argparse.Namespace, workdir: Path, log: Path) -> dict[str, Any]:
    fake = start_fake(args.hold, log)
    hub: Proc | None = None
    try:
        await _healthy(fake.port, "/stats", 10, fake.process)
        hub = start_hub(fake, workdir / "capacity-data", args.in_flight + 64, log)
        await _healthy(hub.port, "/healthz", 30, hub.process)
        idle_rss = hub.rss_mib()[0]
        auth = {"Authorization": f"Bearer {HUB_KEY}"}
        started = time.perf_counter()
        ids = await _submit_all(hub.port, auth, args.in_flight)
        submitted = time.perf_counter() - started
        sampler = asyncio.create_task(_sample_rss(hub))
        in_flight = await _wait_in_flight(fake.port, args.in_flight, started + args.hold * 0.6)
        polls = await _poll(hub.port, auth, ids, until=started + args.hold * 0.9)
        succeeded = await _collect(hub.port, auth, ids)
        sampler.cancel()
        ms = sorted(x * 1000 for x in polls)
        q = statistics.quantiles(ms, n=100, method="inclusive")
        return {
            "tasks": len(ids),
            "submit_s": round(submitted, 2),
            "upstream_max_in_flight": in_flight,
            "succeeded": succeeded,
            "total_s": round(time.perf_counter() - started, 1),
            "get_polls": len(ms),
            "get_p50_ms": round(q[49], 2),
            "get_p99_ms": round(q[98], 2),
            "get_max_ms": round(ms[-1], 2),
            "idle_rss_mib": round(idle_rss),
            "peak_rss_mib": round(hub.rss_mib()[1]),
        }
    finally:
        if hub is not None:
            hub.stop()
        fake.stop()


async def _submit_all(port: int, auth: dict[str, str], count: int) -> list[str]:
    ids: list[str] = []
    remaining = iter(range(count))

    async def client() -> None:
        conn = Connection(port, auth)
        for _ in remaining:
            status, task = await conn.call("POST", "/hub/v1/tasks", HUB_BODY)
            if status != 202:
                raise RuntimeError(f"submit: HTTP {status}: {task}")
            ids.append(task["task_id"])
        conn.close()

    # 16 long-polls at once: a key may hold 32 (IMAGEHUB_MAX_STREAMS_PER_KEY)
    await asyncio.gather(*(client() for _ in range(16)))
    return ids


async def _wait_in_flight(port: int, wanted: int, deadline: float) -> int:
    conn = Connection(port, {})
    seen = 0
    while time.perf_counter() < deadline:
        _, stats = await conn.call("GET", "/stats")
        seen = stats["max_in_flight"]
        if seen >= wanted:
            break
        await asyncio.sleep(0.2)
    conn.close()
    return int(seen)


async def _poll(port: int, auth: dict[str, str], ids: list[str], until: float) -> list[float]:
    """GET random tasks back to back on 16 connections while they are in flight."""
    latencies: list[float] = []

    async def client() -> None:
        conn = Connection(port, auth)
        while time.perf_counter() < until:
            started = time.perf_counter()
            status, task = await conn.call("GET", f"/hub/v1/tasks/{random.choice(ids)}")
            latencies.append(time.perf_counter() - started)
            if status != 200 or task["ready"]:
                raise RuntimeError(f"poll: HTTP {status}, ready={task.get('ready')}")
            await asyncio.sleep(0.01)
        conn.close()

    await asyncio.gather(*(client() for _ in range(16)))
    return latencies


async def _collect(port: int, auth: dict[str, str], ids: list[str]) -> int:
    succeeded = 0
    remaining = iter(ids)

    async def client() -> None:
        nonlocal succeeded
        conn = Connection(port, auth)
        for task_id in remaining:
            _, task = await conn.call("GET", f"/hub/v1/tasks/{task_id}?wait=60")
            succeeded += task["status"] == "succeeded"
        conn.close()

    # 16 long-polls at once: a key may hold 32 (IMAGEHUB_MAX_STREAMS_PER_KEY)
    await asyncio.gather(*(client() for _ in range(16)))
    return succeeded


async def _sample_rss(proc: Proc) -> None:
    while True:  # reading /proc keeps VmHWM current; the samples themselves are not needed
        proc.rss_mib()
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------- why aiohttp, not httpx


async def clients(args: argparse.Namespace, log: Path) -> list[dict[str, Any]]:
    """CPU per upstream call of httpx and aiohttp, against the same fake upstream."""
    fake = start_fake(args.delay, log)
    rows = []
    try:
        await _healthy(fake.port, "/stats", 10, fake.process)
        url = f"http://{HOST}:{fake.port}/v1/images/generations"
        for name in ("httpx", "aiohttp"):
            for concurrency in args.concurrency:
                count = max(200, concurrency * 20)
                await _client_calls(name, url, concurrency, concurrency)
                cpu, wall = time.process_time(), time.perf_counter()
                await _client_calls(name, url, concurrency, count)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                row = {
                    "client": name,
                    "concurrency": concurrency,
                    "calls": count,
                    "per_s": round(count / wall),
                    "cpu_us_per_call": round(cpu / count * 1e6),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        fake.stop()
    return rows


async def _client_calls(name: str, url: str, concurrency: int, count: int) -> None:
    import aiohttp
    import httpx

    remaining = iter(range(count))
    if name == "httpx":
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=60) as client:

            async def one() -> None:
                for _ in remaining:
                    (await client.post(url, json=LITELLM_BODY)).json()

            await asyncio.gather(*(one() for _ in range(concurrency)))
        return
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def two() -> None:
            for _ in remaining:
                async with session.post(url, json=LITELLM_BODY) as response:
                    await response.json()

        await asyncio.gather(*(two() for _ in range(concurrency)))


# ---------------------------------------------------------------- main


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("clients", help="only compare httpx and aiohttp as upstream clients")
    fake = sub.add_parser("fake", help="run only the fake upstream")
    fake.add_argument("--port", type=int, required=True)
    fake.add_argument("--delay", type=float, default=0.05)
    fake.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.05, help="upstream delay (s)")
    parser.add_argument("--jitter", type=float, default=0.0, help=JITTER_HELP)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--scale", type=float, default=1.0, help="scale the request counts")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes of each: serve --workers, --num_workers"
    )
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--in-flight", type=int, default=5000, help="capacity: tasks at once")
    parser.add_argument("--hold", type=float, default=20.0, help="capacity: upstream delay (s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="imagehub-bench-") as path:
        yield Path(path)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with _workdir() as workdir:
        log = workdir / "processes.log"
        try:
            figures: dict[str, Any] = {"throughput": await throughput(args, workdir, log)}
            if not args.skip_capacity:
                figures["capacity"] = await capacity(args, workdir, log)
                print(json.dumps(figures["capacity"]), flush=True)
        except Exception:
            print(log.read_text()[-4000:], file=sys.stderr)
            raise
    return figures


def _environment() -> dict[str, str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "?",
    )  # fmt: skip
    litellm = LITELLM_VENV / "bin" / "litellm"
    version = "not installed"
    if litellm.exists():
        said = subprocess.run([str(litellm), "--version"], capture_output=True, text=True)
        version = said.stdout.strip().splitlines()[-1] if said.stdout.strip() else "?"
    load = Path("/proc/loadavg").read_text().split()[0]
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": sys.version.split()[0],
            "litellm": version, "loadavg": load}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.command == "fake":
        asyncio.run(fake_upstream(args.port, args.delay, args.jitter))
        return
    if args.command == "clients":
        with _workdir() as workdir:
            asyncio.run(clients(args, workdir / "processes.log"))
        return
    if not args.skip_litellm:
        install_litellm()
    print(json.dumps(_environment()), flush=True)
    figures = asyncio.run(_run(args))
    # other work on the machine skews every figure: say how busy it was
    print(json.dumps({"loadavg_after": Path("/proc/loadavg").read_text().split()[0]}))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
