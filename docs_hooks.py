"""MkDocs hooks: the reference pages, generated from the code on every build so they cannot drift.

- `settings.md` from `imagehub.settings.Settings` (every field, its variable, default, meaning);
- `errors.md` from `imagehub.errors` (every error envelope code and task error code);
- `models/` from `imagehub.catalog.Catalog.load()`, the catalog the hub and its page serve;
- `performance.md` from `bench/README.md`, where the figures live next to their scripts.

The page functions need no MkDocs: `tests/unit/test_docs.py` checks what they write.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent
#: links from pages in docs/ to the benchmark figures, as GitHub shows them, and as built
_BENCH_LINK = re.compile(r"\(\.\./bench/README\.md(#[^)]*)?\)")
_EXAMPLE_URL = "http://127.0.0.1:8000"


# -- the pages


def settings_page() -> str:
    """Every setting: its environment variable, its default and its description."""
    from imagehub.settings import Settings

    rows = [
        f"| `{env_name(name, field.validation_alias)}` | {_default(field)} "
        f"| {_cell(field.description or '')} |"
        for name, field in Settings.model_fields.items()
    ]
    return "\n".join(
        [
            "# Settings",
            "",
            "Every setting comes from an `IMAGEHUB_*` environment variable through one typed",
            "`Settings` object (`src/imagehub/settings.py`); `imagehub serve --host --port",
            "--data-dir` override the first three. This page is generated from that class.",
            "Tracing is configured by OpenTelemetry's own `OTEL_*` variables; the rows below",
            "name the ones that turn it on (see [Observability](observability.md)).",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            *rows,
            "",
            "The SDK and the command line's client commands read two variables of their own; see",
            "[Python SDK](sdk.md#settings).",
            "",
        ]
    )


def env_name(name: str, alias: object) -> str:
    """A setting's environment variable: `IMAGEHUB_<NAME>`, or its own (the `OTEL_*` ones)."""
    return alias if isinstance(alias, str) else f"IMAGEHUB_{name.upper()}"


def errors_page() -> str:
    """Every code of the error envelope, and every code a failed task carries."""
    from imagehub.api.errors import BORDER_ERRORS
    from imagehub.errors import HTTP_ERRORS, MAX_DETAILS, TASK_ERRORS

    http = [(c.status, code, _doc(c)) for code, c in HTTP_ERRORS.items()]
    http += [(status, code, what) for status, (code, what) in BORDER_ERRORS.items()]
    task = [(code, "yes" if c.retryable else "no", _doc(c)) for code, c in TASK_ERRORS.items()]
    return "\n".join(
        [
            "# Error codes",
            "",
            "Generated from `imagehub.errors` and the API border (`imagehub.api.errors`).",
            "",
            "## The error envelope",
            "",
            'Every error has one shape: `{"error": {"code", "message", "details"?}}`; a 422 lists',
            f"every failing field in `details` (the first {MAX_DETAILS}, and its message counts",
            "them all). The SDK raises the class of `imagehub.errors` named after the code.",
            "",
            "| status | code | meaning |",
            "|---|---|---|",
            *(f"| {s} | `{code}` | {_cell(what)} |" for s, code, what in sorted(http)),
            "",
            "- `409 last_admin_key`: over HTTP and from `imagehub keys revoke`; see",
            "  [Tenants, keys and limits](tenancy.md).",
            "- `422 invalid_input` also answers a request no configured route can honour: the",
            "  message names the parameter and why",
            "  ([Route capabilities](providers.md#route-capabilities)); nothing is stored.",
            "- `503 model_unavailable`: no route serves the model on this hub; the message names",
            "  the setting that would give it one, and nothing is stored. The OpenAI-compatible",
            "  endpoints answer the same in OpenAI's error shape.",
            "- `503 overloaded` also answers while the hub cannot write its storage (disk full, no",
            "  file descriptor left), and while the task store is unreachable.",
            "",
            "`429 rate_limited` and `503 overloaded` carry `Retry-After`. A request line and",
            "headers larger than `IMAGEHUB_MAX_HEADER_BYTES` get a plain-text `431`, and a client",
            "that does not send them within `IMAGEHUB_HEADER_TIMEOUT_SECONDS` a plain-text `408`,",
            "from the server itself, before the API reads anything.",
            "",
            "## A failed task's error",
            "",
            "A task that ends `failed` carries `error: {code, message, retryable}`. `retryable`",
            "says whether the hub retries that kind of failure; it is `false` on the error a",
            "task keeps once the hub gave up (`gave up after 3 attempts`).",
            "",
            "| code | retried by the hub | meaning |",
            "|---|---|---|",
            *(f"| `{code}` | {retried} | {_cell(what)} |" for code, retried, what in task),
            "",
            "A canceled task has the code `canceled` too. A storage fault of the hub's own (disk",
            "full, no file descriptor left) while a task runs is not the task's: it goes back to",
            "the queue (backoff, at most a minute apart) with `internal_error` as its last",
            "error, however many attempts it made, until the storage recovers. See",
            "[Failure policy](providers.md#failure-policy) for which upstream answer becomes",
            "which code.",
            "",
        ]
    )


def model_pages() -> dict[str, str]:
    """`models/index.md` and one page per catalog model, as `GET /hub/v1/models/{id}` has it."""
    from imagehub.catalog import Catalog

    catalog = Catalog.load()
    rows = [
        f"| {spec.capability} | [`{spec.id}`]({_slug(spec.id)}.md) | `{spec.upstream_model}` |"
        for spec in catalog
    ]
    index = [
        "# Models",
        "",
        "Generated from the catalog (`src/imagehub/catalog/models.toml`): the same entries",
        "drive validation, the JSON Schema, `GET /hub/v1/models` and the examples of the page",
        "at `/`.",
        "",
        "| capability | id | upstream model |",
        "|---|---|---|",
        *rows,
        "",
        "Image size presets (`image_size`): "
        + ", ".join(f"`{n}` ({w}x{h})" for n, (w, h) in catalog.presets.items())
        + ".",
        "",
    ]
    pages = {"models/index.md": "\n".join(index)}
    for spec in catalog:
        pages[f"models/{_slug(spec.id)}.md"] = _model_page(spec)
    return pages


def performance_page() -> str:
    """bench/README.md, its links to the benchmark scripts shown as file names."""
    text = (ROOT / "bench" / "README.md").read_text()
    text = re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`bench/\2`)", text)
    return "<!-- generated from bench/README.md -->\n" + text


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    return {
        "settings.md": settings_page(),
        "errors.md": errors_page(),
        "performance.md": performance_page(),
        **model_pages(),
    }


def models_nav() -> list[Any]:
    """The Models section of the navigation: the index, then each model by its name."""
    from imagehub.catalog import Catalog

    return ["models/index.md", *({s.name: f"models/{_slug(s.id)}.md"} for s in Catalog.load())]


# -- MkDocs events


def on_config(config: Any) -> Any:
    """`Models: models/index.md` in the nav becomes the index and every model's page."""
    for i, item in enumerate(config["nav"] or []):
        if item == {"Models": "models/index.md"}:
            config["nav"][i] = {"Models": models_nav()}
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """In the site, links to bench/README.md go to its page."""
    return _BENCH_LINK.sub(lambda m: f"(performance.md{m.group(1) or ''})", markdown)


# -- helpers


def _model_page(spec: Any) -> str:
    from imagehub.api.examples import curl_example
    from imagehub.api.page import default_text

    rows = [
        f"| `{p.name}` | {p.display_type} | {'yes' if p.required else ''} | "
        f"{_code(default_text(p))} | {_cell(p.range_text)} | {_cell(p.description)} |"
        for p in spec.params
    ]
    return "\n".join(
        [
            f"# {spec.name} (`{spec.id}`)",
            "",
            _cell(spec.description),
            "",
            f"- capability: {spec.capability}",
            f"- vendor: {spec.vendor}",
            f"- upstream model: `{spec.upstream_model}`",
            "",
            "## Parameters",
            "",
            "| parameter | type | required | default | values | description |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Example",
            "",
            "```json",
            json.dumps({"model": spec.id, "input": spec.example}, indent=2),
            "```",
            "",
            "```sh",
            curl_example(_EXAMPLE_URL, spec.id, spec.example).rstrip(),
            "```",
            "",
        ]
    )


def _slug(model_id: str) -> str:
    return model_id.replace("/", "-")


def _default(field: FieldInfo) -> str:
    value = field.get_default()
    if value is None or value == "":
        return "unset"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list):
        value = json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"`{value}`"


def _doc(cls: type) -> str:
    return " ".join((inspect.getdoc(cls) or "").split())


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
