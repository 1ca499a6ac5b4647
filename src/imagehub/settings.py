"""One typed Settings object, read once from `IMAGEHUB_*` environment variables and passed down.

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the hub. Each field's description is its documentation."""

    model_config = SettingsConfigDict(env_prefix="IMAGEHUB_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address `imagehub serve` listens on.")
    port: int = Field(8000, description="Port `imagehub serve` listens on.")
    data_dir: Path = Field(
        Path("./imagehub-data"),
        description="Folder for the SQLite database and the media folder (embedded default).",
    )
    database_url: str | None = Field(
        None, description="Task store; default `sqlite:///<data_dir>/imagehub.db`."
    )
    media_dir: Path | None = Field(None, description="Media folder; default `<data_dir>/media`.")
    public_url: str | None = Field(
        None,
        description="Base URL that clients reach the hub at, for file URLs in task objects; "
        "default: the URL of each request.",
    )
    admin_key: SecretStr | None = Field(
        None,
        description="Admin API key; every start stores it as an active admin key (restoring "
        "it if it was revoked). Unset and no key stored yet: the first start creates one and "
        "prints it once.",
    )
    workers: int = Field(
        1,
        description="Processes `imagehub serve` runs on its one port, each serving the API and "
        "running a worker (`--workers`); more than 1 uses more than one CPU core.",
        ge=1,
        le=64,
    )
    worker_concurrency: int = Field(
        64,
        description="Tasks one worker process runs at once (when only the demo provider serves, "
        "at most twice what its image processes take: the drawing is the bottleneck).",
        ge=1,
    )
    lease_seconds: float = Field(
        30.0,
        description="How long a claimed task stays leased without a heartbeat before another "
        "worker may take it over.",
        gt=0,
    )
    poll_seconds: float = Field(
        1.0,
        description="Longest pause between two looks at the queue; wake-ups are immediate, "
        "this is only the fallback.",
        gt=0,
    )
    max_attempts: int = Field(3, description="Attempts a task gets before it fails.", ge=1)
    progress_seconds: float = Field(
        1.0,
        description="Seconds between two `progress` events of a task's event stream while it "
        "is queued or running.",
        gt=0,
    )
    estimate_window_seconds: float = Field(
        900.0,
        description="How far back the attempts journal is read for the typical time of each "
        "model and latency shape and the rate tasks finish at (progress and ETA estimates).",
        gt=0,
    )
    estimate_refresh_seconds: float = Field(
        5.0,
        description="How long a process keeps its reading of the attempts journal before "
        "reading it again for estimates.",
        ge=0,
    )
    estimate_default_seconds: float = Field(
        30.0,
        description="What a task of a model without a recent successful attempt is expected "
        "to take, for progress and ETA.",
        gt=0,
    )
    retry_base_seconds: float = Field(
        1.0, description="First retry delay; doubles per attempt, with jitter.", ge=0
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        description="On stop, how long running tasks may finish before their leases are "
        "handed back.",
        ge=0,
    )
    max_body_bytes: int = Field(
        30 * 1024 * 1024, description="Largest request body accepted (uploads included)."
    )
    max_input_image_bytes: int = Field(
        20 * 1024 * 1024, description="Largest input image, as fetched or uploaded."
    )
    max_input_pixels: int = Field(
        40_000_000, description="Most pixels an input image may decode to."
    )
    max_task_input_pixels: int = Field(
        100_000_000,
        description="Most pixels one task's input images may decode to together (an image "
        "named twice counts once).",
    )
    decode_budget_pixels: int = Field(
        100_000_000,
        description="Most pixels a process's image work (input decoding, transcodes, demo "
        "drawing, previews) holds at once (about 4 bytes each); further work waits its turn.",
    )
    image_processes: int = Field(
        1,
        description="Worker processes for CPU-heavy image work (demo drawing, transcodes, input "
        "decoding, previews), so it never holds up the API's event loop; 0 runs it on threads "
        "of the process instead. One suits 2 cores; about one per core beyond the first.",
        ge=0,
        le=64,
    )
    fetch_timeout_seconds: float = Field(
        20.0, description="Total time allowed to download one input image."
    )
    file_ttl_seconds: float | None = Field(
        None,
        description="When set, stored files expire this many seconds after they were written.",
    )
    demo: bool | None = Field(
        None,
        description="Serve the models that have no upstream route with the offline `demo` "
        "provider (labelled placeholder images, free). Unset: only while no upstream route is "
        "configured at all (the keyless quickstart); `true`: always; `false`: never. A model "
        "no route serves is refused with 503 `model_unavailable`.",
    )

    # -- scale-out: PostgreSQL, cross-process wake-ups, S3-compatible media

    database_pool_size: int = Field(
        10, description="PostgreSQL connections each process keeps at most.", ge=1
    )
    database_synchronous_commit: bool = Field(
        True,
        description="Whether the hub's commits wait for the PostgreSQL server to flush them "
        "to disk (true: the server's own `synchronous_commit` applies). false sets it off on "
        "the hub's connections only: about 0.5 ms less database CPU per task and faster "
        "commits, but a crash of the database server may lose its last commits (up to 3 x "
        "`wal_writer_delay`, 0.6 s by default): submits already answered, outcomes already "
        "reported. It never corrupts the database.",
    )
    database_wait_seconds: float = Field(
        10.0,
        description="How long a request waits for a PostgreSQL connection before it answers "
        "503 (the store counts as unavailable).",
        gt=0,
    )
    migrate_on_start: bool = Field(
        True,
        description="Apply pending PostgreSQL schema migrations when a process starts; when "
        "false, run `imagehub migrate` first (SQLite always migrates on start).",
    )
    wakeups: Literal["auto", "postgres", "redis", "off"] = Field(
        "auto",
        description="How processes wake each other on a new or changed task: `auto` is Redis "
        "when `IMAGEHUB_REDIS_URL` is set, else PostgreSQL LISTEN/NOTIFY on a PostgreSQL "
        "store, else in-process only. A jittered poll backs every choice up.",
    )
    wakeup_batch_seconds: float = Field(
        0.005,
        description="How long a process gathers wake-ups before sending them to the other "
        "processes as one message (one NOTIFY): fewer commits under load, for at most this "
        "much delay to a waiter in another process. 0 sends each batch at once.",
        ge=0,
        le=1,
    )
    wakeup_channel: str = Field(
        "imagehub",
        description="The LISTEN/NOTIFY or Redis pub/sub channel; hubs sharing one Redis need "
        "different ones.",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
    )
    redis_url: str | None = Field(
        None,
        description="Redis (`redis://host:6379/0`) for cross-process wake-ups and per-key request "
        "rates; optional.",
    )
    media_url: str | None = Field(
        None,
        description="`s3://bucket/prefix` keeps media in S3-compatible object storage; "
        "default: the local media folder.",
    )
    media_serving: Literal["hub", "redirect"] = Field(
        "hub",
        description="How `GET /hub/v1/files/{id}` serves S3 media: `hub` streams the bytes, "
        "`redirect` answers 307 to a presigned URL of the object store.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 API endpoint of a non-AWS store (MinIO, R2, Ceph, ...); default AWS.",
    )
    s3_region: str | None = Field(None, description="S3 region; default: boto3's own lookup.")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key id; default: boto3's credential chain (env, roles)."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key; default: boto3's credential chain."
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="S3 bucket addressing; `auto` is path-style with a custom endpoint, "
        "else boto3's choice.",
    )
    s3_presign_seconds: int = Field(
        3600, description="Lifetime of the presigned URLs `redirect` serving hands out.", ge=1
    )

    # -- upstream providers and routes (see README "Providers and routes")
    gemini_api_key: SecretStr | None = Field(
        None, description="Gemini API key: makes `gemini` a route for the Nano Banana family."
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta", description="Gemini API base URL."
    )
    openai_api_key: SecretStr | None = Field(
        None, description="OpenAI API key: makes `openai` a route for GPT Image 2."
    )
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI API base URL.")
    openrouter_api_key: SecretStr | None = Field(
        None,
        description="OpenRouter API key: makes `openrouter` a further route for the Nano Banana "
        "family.",
    )
    openrouter_base_url: str = Field(
        "https://openrouter.ai/api/v1", description="OpenRouter (OpenAI-compatible) base URL."
    )
    fal_key: SecretStr | None = Field(
        None, description="fal API key: makes `fal` a further route for all eight models."
    )
    fal_base_url: str = Field("https://queue.fal.run", description="fal queue base URL.")
    routes_file: Path | None = Field(
        None, description="TOML file of further routes (provider, credentials, priority...)."
    )
    upstream_timeout_seconds: float = Field(
        300.0,
        description="Longest one upstream call may take, unless its route sets its own timeout.",
        gt=0,
    )
    route_cooldown_seconds: float = Field(
        30.0,
        description="How long a failing route is skipped while another route can serve the model.",
        ge=0,
    )
    route_state_seconds: float = Field(
        5.0,
        description="How often a process that runs tasks writes its routes' state (health, "
        "cool-down, calls in flight) to the database, for the admin routes of every process; "
        "it also writes at once when a route starts or stops cooling down.",
        gt=0,
        le=10,
    )
    retry_max_delay_seconds: float = Field(
        300.0,
        description="Longest wait before a retry; an upstream asking to wait longer fails the "
        "task at once.",
        gt=0,
    )
    # -- tenants, limits, webhooks and hostile input

    fetch_allow_private: str = Field(
        "",
        description="Comma-separated networks (CIDR), addresses or host names the hub may "
        "fetch from (image URLs, webhooks) although they are not public, on any port; cloud "
        "metadata addresses stay refused. Default: public addresses on ports 80 and 443 only.",
    )
    key_cache_seconds: float = Field(
        5.0,
        description="How long a process trusts a key it looked up; a revoked key or a changed "
        "limit takes effect in every process within this time.",
        ge=0,
    )
    max_streams_per_key: int = Field(
        32,
        description="Event streams and long-polls (`?wait=`, `Prefer: wait`) one key may hold "
        "open at once in one process; past it, 429 with `Retry-After`.",
        ge=1,
    )
    webhook_timeout_seconds: float = Field(
        15.0, description="Time one webhook delivery attempt may take.", gt=0
    )
    webhook_retry_delays: list[float] = Field(
        [5, 300, 1800, 7200, 18000, 36000, 28800],
        description="Pauses before each retry of a failed webhook delivery, in seconds, as a "
        "JSON list (jittered by 10%); the default retries for about a day.",
    )
    max_header_bytes: int = Field(
        32768,
        description="Largest request line and headers `imagehub serve` accepts; more is "
        "answered 431.",
        ge=1024,
    )
    header_timeout_seconds: float = Field(
        10.0,
        description="Time a client has to send a request's line and headers before "
        "`imagehub serve` closes the connection.",
        gt=0,
    )
    body_timeout_seconds: float = Field(
        120.0, description="Time a client has to send a request's whole body (else 408).", gt=0
    )
    keep_alive_seconds: int = Field(
        5, description="How long `imagehub serve` keeps an idle connection open.", ge=1
    )

    # -- observability: logs, metrics, traces (see docs/observability.md)

    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: every log line of `imagehub serve` and `imagehub worker` "
        "(uvicorn's access log included) is one JSON object with `request_id`, `task_id`, "
        "`tenant`, `route` and `trace_id` where they apply; `text`: plain lines.",
    )
    metrics_port: int | None = Field(
        None,
        description="Port `imagehub worker` serves Prometheus `/metrics` on (at "
        "`IMAGEHUB_HOST`); unset: none. `imagehub serve` always serves `/metrics`.",
        ge=1,
        le=65535,
    )
    trace_prompts: bool = Field(
        False,
        description="Put each task's prompt on its upstream spans (`imagehub.prompt`). Off: "
        "spans carry no prompt; they never carry a key.",
    )
    # the OpenTelemetry SDK's own variables: tracing is on when one of them asks for it
    otel_sdk_disabled: bool = Field(
        False,
        validation_alias="OTEL_SDK_DISABLED",
        description="`true` turns tracing off whatever else is set (OpenTelemetry's variable).",
    )
    otel_traces_exporter: str | None = Field(
        None,
        validation_alias="OTEL_TRACES_EXPORTER",
        description="`otlp` (OTLP over HTTP/protobuf) or `console` turns tracing on; `none` or "
        "unset leaves it off unless an OTLP endpoint is set. Needs the `otel` extra.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP collector base URL (`/v1/traces` is appended); setting it turns "
        "tracing on. The SDK reads the other `OTEL_*` variables (headers, service name, "
        "sampler, batch sizes) itself.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        None,
        validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        description="The full OTLP/HTTP traces URL, instead of the base URL above; setting it "
        "turns tracing on.",
    )

    @property
    def tracing_on(self) -> bool:
        """Whether the OTEL_* variables ask for traces."""
        if self.otel_sdk_disabled:
            return False
        exporter = (self.otel_traces_exporter or "").strip().lower()
        if exporter:
            return exporter != "none"
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'imagehub.db'}"

    @property
    def media_path(self) -> Path:
        return self.media_dir or self.data_dir / "media"


def secret_from_environment(name: str) -> SecretStr | None:
    """The environment variable a routes file names for a credential (`api_key_env`)."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None
