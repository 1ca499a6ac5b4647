"""What tracing costs on the hot path: the same load with tracing off, then on.

Starts `bench/serve.py` (one process: API + worker, SQLite, scripted provider) twice: once
with no `OTEL_*` variable (tracing off, the SDK never imported), once exporting every span
over OTLP/HTTP to a loopback receiver this script runs (it reads and drops each batch, so
the receiver's own work stays small). Each time `bench/load.py` runs the same closed loop,
and one line per mode is printed:

    .venv/bin/python bench/tracing.py --tasks 3000 --concurrency 32

`--spans N` measures one span alone instead, in this process: the no-op `Tracing()` and the
SDK's (`OtelTracing`, batching into an exporter that drops every batch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
#: load.py's default warm-up, which the server runs too
WARMUP = 200


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sink:
    """An OTLP/HTTP endpoint on loopback that counts export requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _run(mode: str, port: int, args: argparse.Namespace, sink: Sink) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode == "on":
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_TRACES_EXPORTER": "otlp"}
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "serve.py"), "--port", str(port)],
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("bench/serve.py did not start")
            time.sleep(0.1)
        before, cpu = sink.requests, _cpu_seconds(server.pid)
        load = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "load.py"),
                "--url",
                url,
                "--mode",
                "wait",
                "--concurrency",
                str(args.concurrency),
                "--tasks",
                str(args.tasks),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        cpu = _cpu_seconds(server.pid) - cpu
        result: dict[str, object] = json.loads(load.stdout.strip().splitlines()[-1])
        result["tracing"] = mode
        # the server's CPU (all its threads, the exporter's included) per task, warm-up counted:
        # steadier than throughput on a machine others share
        done = args.tasks + WARMUP
        result["server_cpu_ms_per_task"] = round(cpu / done * 1000, 3)
        result["otlp_exports"] = sink.requests - before
        return result
    finally:
        server.terminate()
        server.wait(30)


def spans(count: int) -> None:
    """Microseconds per span, with a parent traceparent and three attributes, off and on."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from imagehub.tracing import OtelTracing, Tracing

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    on = OtelTracing(span_exporter=Drop())
    for name, tracing in (("off", Tracing()), ("on", on)):
        started = time.perf_counter()
        for _ in range(count):
            with tracing.span(
                "s", {"imagehub.task_id": "tsk_x", "imagehub.model": "m"}, parent=parent
            ) as span:
                span.set("imagehub.bytes", 1024)
        micros = (time.perf_counter() - started) / count * 1e6
        print(json.dumps({"tracing": name, "spans": count, "us_per_span": round(micros, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="off/on pairs, interleaved")
    parser.add_argument("--spans", type=int, help="time N spans in this process, off and on")
    args = parser.parse_args()
    if args.spans:
        spans(args.spans)
        return
    sink = Sink()
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            print(json.dumps(_run(mode, args.port, args, sink)), flush=True)
    print(json.dumps({"otlp_bytes_total": sink.bytes}))


if __name__ == "__main__":
    main()
