"""Real image sizes and CPU-heavy image work: CPU per task and per MB, and the API under a queue.

Two scenarios, each with its own processes on 127.0.0.1 (this process is the load client):

  sizes   a fake OpenAI Images API answers every `POST /v1/images/generations` with one image
          as `b64_json` (a 2.4 MB PNG, a 4K PNG); `imagehub serve` (SQLite, local media) and
          LiteLLM's proxy are each sent the same OpenAI request, `--tasks` of them at
          `--concurrency`. Reported: CPU per task and per MB of image (utime + stime of the
          server's whole process tree, read from /proc before and after), tasks/s, p50.
          `--apis openai,tasks` also sends the hub the same task through `POST /hub/v1/tasks`
          held with `Prefer: wait` (its answer links the file). One answer of each target is
          read whole first: it must carry the image.
  steps   CPU of each step of the answer path for one image, old way and new way, in this
          process (`time.process_time`, median of `--tasks` repetitions).
  queue   `imagehub serve` with only the offline demo provider (1024x1024 PNGs); `--queued`
          tasks are submitted at concurrency 64 (submit latency; each client's first submit,
          the cold start, is reported apart as `cold_submits`), then, while they are still
          queued behind the demo drawing, `GET /hub/v1/tasks/{id}` is timed for `--seconds`.

    .venv/bin/python bench/images.py sizes                  # hub and LiteLLM, both payloads
    .venv/bin/python bench/images.py queue                  # 2,000 tasks behind the demo
    .venv/bin/python bench/images.py steps                  # the answer path, step by step
    --hub-src DIR    run the hub from another checkout's src/ (PYTHONPATH), e.g. a previous main
    --litellm PATH   the `litellm` executable (default: bench/upstream.py's virtualenv)

Each run prints one JSON line per measurement and the load average it started at.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proccpu import thread_cpu
from upstream import (
    HOST,
    HUB_KEY,
    LITELLM_KEY,
    PY,
    Proc,
    _free_port,
    _healthy,
    install_litellm,
)

#: name: (size, noise): a 2.4 MB 1024x1536 PNG, and a 10.9 MB 3840x2160 one
PAYLOADS = {"2.4MB": ((1024, 1536), 100), "4K": ((3840, 2160), 40)}
OPENAI_BODY = {"model": "gpt-image-2", "prompt": "bench", "n": 1, "size": "1024x1024"}


def payload(name: str) -> bytes:
    """A photo-like PNG that does not compress away (a gradient under seeded noise)."""
    size, grain = PAYLOADS[name]
    rng = random.Random(7)
    noise = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    noise = noise.point(lambda v: v * grain // 255)
    base = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (base, noise, Image.blend(base, noise, 0.5)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


# ---------------------------------------------------------------- the fake upstream


async def fake(port: int, image: bytes) -> None:
    """Answers every request with the image as OpenAI's `b64_json`, at once."""
    body = json.dumps(
        {
            "created": 1,
            "data": [{"b64_json": base64.b64encode(image).decode()}],
            "usage": {"input_tokens": 10, "output_tokens": 272, "total_tokens": 282},
        }
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    answer = head.encode() + b"\r\n\r\n" + body

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                status, _ = await _read_answer(reader)  # a request reads like an answer here
                del status
                writer.write(answer)
                await writer.drain()

    server = await asyncio.start_server(connection, HOST, port)
    async with server:
        await server.serve_forever()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[str, int]:
    """The first line and the body length of one HTTP message (the body is read and dropped)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    chunked = False
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        size = 0
        while part := int((await reader.readline()).strip() or b"0", 16):
            await reader.readexactly(part)
            await reader.readline()
            size += part
        await reader.readline()
        return head.split("\r\n", 1)[0], size
    await reader.readexactly(length)
    return head.split("\r\n", 1)[0], length


class Client:
    """One keep-alive connection that reads answers without parsing them (cheap at 10 MB)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port, self.headers = port, headers
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        extra: dict[str, str] | None = None,
        *,
        whole: bool = False,
    ) -> tuple[int, int, bytes]:
        """Status, body length, and the body when small (or `whole`)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(HOST, self.port, limit=2**20)
        reader, writer = self._streams
        data = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(extra or {})}.items()]
        lines += [f"Content-Length: {len(data)}", "Content-Type: application/json"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = next(
            (
                int(v)
                for n, _, v in (h.partition(":") for h in head.split("\r\n")[1:])
                if n.strip().lower() == "content-length"
            ),
            0,
        )
        raw = await reader.readexactly(length) if length < 65536 or whole else b""
        if not raw:
            await reader.readexactly(length)
        return int(head.split(" ", 2)[1]), length, raw

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# ---------------------------------------------------------------- CPU from /proc


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its descendants (live ones, and those it waited for)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            fields = _stat(pid)
            # utime, stime, and the children it reaped (cutime, cstime)
            total += sum(int(f) for f in fields[11:15]) / tick
        todo.extend(children.get(pid, []))
    return total


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0]


# ---------------------------------------------------------------- processes


def _spawn(name: str, cmd: list[str], env: dict[str, str], log: Path) -> Proc:
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return Proc(name, process, int(cmd[cmd.index("--port") + 1]))


def start_hub(args: argparse.Namespace, data_dir: Path, log: Path, **env: str) -> Proc:
    port = _free_port()
    environ = {**os.environ, "IMAGEHUB_ADMIN_KEY": HUB_KEY, **env}
    if args.hub_src:
        environ["PYTHONPATH"] = str(args.hub_src)
    cmd = [PY, "-m", "imagehub.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    return _spawn("imagehub", [*cmd, "--log-level", "warning"], environ, log)


def start_litellm(args: argparse.Namespace, fake_port: int, workdir: Path, log: Path) -> Proc:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-image-2\n"
        "    litellm_params:\n"
        "      model: openai/gpt-image-2\n"
        f"      api_base: http://{HOST}:{fake_port}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
        "  request_timeout: 600\n"
        "  set_verbose: false\n"
    )
    binary = args.litellm or str(install_litellm())
    port = _free_port()
    cmd = [binary, "--config", str(config), "--host", HOST, "--port", str(port)]
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY}
    return _spawn("litellm", cmd, env, log)


# ---------------------------------------------------------------- sizes


#: the two ways into the hub: OpenAI's route (`b64_json` answers), and the native one held with
#: `Prefer: wait` (the answer links the stored file); LiteLLM has the first only
APIS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "openai": ("/v1/images/generations", OPENAI_BODY, {}),
    "tasks": (
        "/hub/v1/tasks",
        {"model": "gpt-image-2", "input": {"prompt": "bench"}},
        {"Prefer": "wait=60"},
    ),
}


async def _closed_loop(
    port: int, headers: dict[str, str], count: int, concurrency: int, api: str = "openai"
) -> tuple[list[float], int]:
    latencies: list[float] = []
    left = count
    size = 0
    path, body, extra = APIS[api]

    async def one_client() -> None:
        nonlocal left, size
        client = Client(port, headers)
        try:
            while left > 0:
                left -= 1
                started = time.perf_counter()
                status, length, raw = await client.call("POST", path, body, extra)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {raw[:300]!r}")
                latencies.append(time.perf_counter() - started)
                size = length
        finally:
            client.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies, size


async def answers_the_image(port: int, headers: dict[str, str], image: bytes) -> None:
    """One `b64_json` answer read whole: it must carry the upstream's image, byte for byte."""
    client = Client(port, headers)
    try:
        status, _, raw = await client.call(
            "POST", "/v1/images/generations", OPENAI_BODY, whole=True
        )
    finally:
        client.close()
    if status != 200 or base64.b64decode(json.loads(raw)["data"][0]["b64_json"]) != image:
        raise RuntimeError(f"the answer does not carry the image (HTTP {status})")


async def measure(
    target: Proc,
    headers: dict[str, str],
    args: argparse.Namespace,
    name: str,
    image: bytes,
    api: str = "openai",
) -> dict[str, Any]:
    await answers_the_image(target.port, headers, image)
    await _closed_loop(target.port, headers, args.warmup, args.concurrency, api)
    cpu = tree_cpu(target.process.pid)
    started = time.perf_counter()
    latencies, answer = await _closed_loop(target.port, headers, args.tasks, args.concurrency, api)
    wall = time.perf_counter() - started
    used = tree_cpu(target.process.pid) - cpu
    per_task = used / len(latencies) * 1000
    image_mb = len(image) / 1e6
    return {
        "scenario": "sizes",
        "target": target.name,
        "api": api,
        "payload": name,
        "image_mb": round(image_mb, 2),
        "answer_mb": round(answer / 1e6, 2),
        "tasks": len(latencies),
        "concurrency": args.concurrency,
        "cpu_ms_per_task": round(per_task, 2),
        "cpu_ms_per_mb": round(per_task / image_mb, 2),
        "tasks_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "load_at_start": args.load,
    }


async def sizes(args: argparse.Namespace, workdir: Path, log: Path) -> list[dict[str, Any]]:
    rows = []
    for name in args.payloads.split(","):
        image = payload(name)
        image_path = workdir / f"{name}.png"
        image_path.write_bytes(image)
        fake_port = _free_port()
        fake_proc = _spawn(
            "fake",
            [PY, __file__, "fake", "--port", str(fake_port), "--image", str(image_path)],
            dict(os.environ),
            log,
        )
        procs = [fake_proc]
        try:
            await asyncio.sleep(1.0)
            hub = start_hub(
                args,
                workdir / f"hub-{name}",
                log,
                IMAGEHUB_OPENAI_API_KEY="sk-bench",
                IMAGEHUB_OPENAI_BASE_URL=f"http://{HOST}:{fake_port}/v1",
                IMAGEHUB_DEMO="false",
            )
            procs.append(hub)
            await _healthy(hub.port, "/healthz", 60, hub.process)
            for api in args.apis.split(","):
                auth = {"Authorization": f"Bearer {HUB_KEY}"}
                rows.append(await measure(hub, auth, args, name, image, api))
                print(json.dumps(rows[-1]), flush=True)
            hub.stop()
            if not args.skip_litellm:
                litellm = start_litellm(args, fake_port, workdir, log)
                procs.append(litellm)
                await _healthy(litellm.port, "/health/liveliness", 180, litellm.process)
                auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
                rows.append(await measure(litellm, auth, args, name, image))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            for proc in procs:
                if proc.process.poll() is None:
                    proc.stop()
    return rows


# ---------------------------------------------------------------- queue


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(50), "p99_ms": at(99), "max_ms": round(ordered[-1] * 1000, 1)}


def _runqueue_wait(pid: int) -> float:
    """Seconds the main thread of `pid` spent ready to run, waiting for a core (schedstat)."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9


async def queue(args: argparse.Namespace, workdir: Path, log: Path) -> list[dict[str, Any]]:
    hub = start_hub(args, workdir / "hub-queue", log, IMAGEHUB_DEMO="true")
    auth = {"Authorization": f"Bearer {HUB_KEY}"}
    body = {"model": "nano-banana", "input": {"prompt": "queued behind the demo"}}
    try:
        await _healthy(hub.port, "/healthz", 60, hub.process)
        ids: list[str] = []
        submits: list[float] = []
        left = args.queued
        clients = [Client(hub.port, auth) for _ in range(64)]

        async def submit(client: Client, times: list[float]) -> None:
            started = time.perf_counter()
            status, _, raw = await client.call("POST", "/hub/v1/tasks", body)
            times.append(time.perf_counter() - started)
            if status != 202:
                raise RuntimeError(f"HTTP {status}: {raw[:300]!r}")
            ids.append(json.loads(raw)["task_id"])

        async def submitter(client: Client) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await submit(client, submits)

        # one submit per client first, timed apart: its connection, the key's first look-up
        # and the image pool's start are a cold start, not what a queue costs a submit
        cold: list[float] = []
        await asyncio.gather(*(submit(client, cold) for client in clients))
        left -= len(cold)
        pid = hub.process.pid
        loop_cpu, loop_waited = thread_cpu(pid), _runqueue_wait(pid)
        try:
            await asyncio.gather(*(submitter(client) for client in clients))
        finally:
            for client in clients:
                client.close()
        # the loop thread's own CPU, and how long it was ready to run but had no core: on a
        # shared machine the second explains the latencies the first does not
        loop_cpu, loop_waited = thread_cpu(pid) - loop_cpu, _runqueue_wait(pid) - loop_waited
        reads: list[float] = []
        statuses: dict[str, int] = {}
        until = time.perf_counter() + args.seconds

        async def reader() -> None:
            client = Client(hub.port, auth)
            try:
                while time.perf_counter() < until:
                    task_id = random.choice(ids)
                    started = time.perf_counter()
                    status, _, raw = await client.call("GET", f"/hub/v1/tasks/{task_id}")
                    reads.append(time.perf_counter() - started)
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {raw[:300]!r}")
                    state = json.loads(raw)["status"] if raw else "succeeded"
                    statuses[state] = statuses.get(state, 0) + 1
            finally:
                client.close()

        await asyncio.gather(*(reader() for _ in range(args.get_concurrency)))
        _, _, raw = await Client(hub.port, auth).call("GET", f"/hub/v1/tasks/{ids[-1]}")
        row = {
            "scenario": "queue",
            "queued": args.queued,
            "submit_concurrency": 64,
            "cold_submits": _percentiles(cold),
            "submit": _percentiles(submits),
            "submit_loop_cpu_ms": round(loop_cpu * 1000 / len(submits), 3),
            "submit_loop_waited_ms": round(loop_waited * 1000 / len(submits), 3),
            "get_concurrency": args.get_concurrency,
            "gets": len(reads),
            "get": _percentiles(reads),
            "statuses_seen": statuses,
            "last_task_status": json.loads(raw)["status"],
            "load_at_start": args.load,
        }
        print(json.dumps(row), flush=True)
        return [row]
    finally:
        hub.stop()


# ---------------------------------------------------------------- steps


def _cases(image: bytes) -> dict[str, Callable[[], object]]:
    """Each step of the answer path for one image, the old way and the new way."""
    import binascii

    import orjson
    import pybase64

    from imagehub.providers.images import check_image, lift_base64

    text = base64.b64encode(image).decode()
    answer = {"created": 1, "data": [{"b64_json": text}], "usage": {}}
    body = json.dumps(answer).encode()
    return {
        "parse: json.loads": lambda: json.loads(body),
        "parse: orjson.loads": lambda: orjson.loads(body),
        "parse: lift_base64 + orjson.loads": lambda: orjson.loads(
            lift_base64(body, b"b64_json")[0]
        ),
        "decode: base64.b64decode(validate=True)": lambda: base64.b64decode(text, validate=True),
        "decode: binascii strict": lambda: binascii.a2b_base64(text, strict_mode=True),
        "decode: pybase64 (from the bytes)": lambda: pybase64.b64decode(
            lift_base64(body, b"b64_json")[1][0], validate=True
        ),
        "check: check_image (PNG CRCs)": lambda: check_image(image, "bench"),
        "encode: base64.b64encode().decode()": lambda: base64.b64encode(image).decode(),
        "encode: pybase64.b64encode": lambda: pybase64.b64encode(image),
        "answer: json.dumps(dict with base64 str)": lambda: json.dumps(answer),
    }


def steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in args.payloads.split(","):
        for case, fn in _cases(payload(name)).items():
            fn()
            times = []
            for _ in range(args.tasks):
                started = time.process_time()
                fn()
                times.append(time.process_time() - started)
            row = {
                "scenario": "steps",
                "payload": name,
                "step": case,
                "cpu_ms": round(statistics.median(times) * 1000, 3),
                "load_at_start": args.load,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# ---------------------------------------------------------------- main


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fake_cmd = sub.add_parser("fake")
    fake_cmd.add_argument("--port", type=int, required=True)
    fake_cmd.add_argument("--image", type=Path, required=True)
    for name in ("sizes", "queue", "steps"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--hub-src", type=Path, help="PYTHONPATH for the hub (another checkout)")
        cmd.add_argument("--litellm", help="the litellm executable")
        cmd.add_argument("--skip-litellm", action="store_true")
        cmd.add_argument("--payloads", default="2.4MB,4K")
        cmd.add_argument(
            "--apis", default="openai", help="the hub's ways in: openai (b64_json), tasks (wait)"
        )
        cmd.add_argument("--tasks", type=int, default=80)
        cmd.add_argument("--warmup", type=int, default=16)
        cmd.add_argument("--concurrency", type=int, default=8)
        cmd.add_argument("--queued", type=int, default=2000)
        cmd.add_argument("--seconds", type=float, default=20.0)
        cmd.add_argument("--get-concurrency", type=int, default=8)
    return parser.parse_args(argv)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="imagehub-bench-images-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    if args.command == "fake":
        asyncio.run(fake(args.port, args.image.read_bytes()))
        return
    args.load = loadavg()
    if args.command == "steps":
        steps(args)
        return
    with _workdir() as workdir:
        log = workdir / "processes.log"
        try:
            scenario = sizes if args.command == "sizes" else queue
            asyncio.run(scenario(args, workdir, log))
        except BaseException:
            sys.stderr.write(log.read_text()[-4000:] if log.exists() else "")
            raise


if __name__ == "__main__":
    main()
