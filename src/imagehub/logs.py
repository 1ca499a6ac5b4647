"""Log lines that say what they are about: the request, the task, the tenant, the route, the trace.

The ids live in context variables: the API's request middleware sets `request_id`, the key
check `tenant`, the hub and the worker `task_id` and `route`. asyncio copies them into every
task it starts, so a line logged anywhere below carries them. `IMAGEHUB_LOG_FORMAT=json`
writes each line as one JSON object with them; the text format leaves lines as they were.
"""

from __future__ import annotations

import json
import logging
import traceback
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

from imagehub import tracing

request_id: ContextVar[str | None] = ContextVar("imagehub_request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("imagehub_task_id", default=None)
tenant: ContextVar[str | None] = ContextVar("imagehub_tenant", default=None)
route: ContextVar[str | None] = ContextVar("imagehub_route", default=None)
#: the trace of the work at hand when no span of it is current (a webhook's, after its span)
trace_id: ContextVar[str | None] = ContextVar("imagehub_trace_id", default=None)

_FIELDS = (("request_id", request_id), ("task_id", task_id), ("tenant", tenant), ("route", route))

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def about(**ids: str | None) -> AbstractContextManager[None]:
    """Log lines inside the block carry these ids (`task_id=`, `route=`, ...)."""
    return _About(ids)


class _About:
    """`about`'s block; a class rather than a generator, as every running task holds one."""

    __slots__ = ("_ids", "_tokens")

    def __init__(self, ids: dict[str, str | None]) -> None:
        self._ids = ids
        self._tokens: Token[str | None] | tuple[Token[str | None], ...] = ()

    def __enter__(self) -> None:
        ids = self._ids
        del self._ids  # held no longer than needed: the tokens undo the block
        if len(ids) == 1:  # most blocks: one token, without a tuple
            ((name, value),) = ids.items()
            self._tokens = _VARS[name].set(value)
        else:
            self._tokens = tuple(_VARS[name].set(value) for name, value in ids.items())

    def __exit__(self, *exc: object) -> None:
        tokens = self._tokens
        for token in reversed(tokens) if isinstance(tokens, tuple) else (tokens,):
            token.var.reset(token)


_VARS: dict[str, ContextVar[str | None]] = {**dict(_FIELDS), "trace_id": trace_id}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the ids that apply."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _FIELDS:
            value = var.get()
            if value is not None:
                line[name] = value
        trace = tracing.current_trace_id() or trace_id.get()
        if trace is not None:
            line["trace_id"] = trace
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(_access_fields(record.args))
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, ensure_ascii=False, default=str)


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    """uvicorn's access line, `(client, method, path, http version, status)`, as fields."""
    if len(args) != 5:
        return {}
    client, method, path, version, status = args
    return {
        "client": client,
        "method": method,
        "path": path.split("?", 1)[0],  # a query may hold what a log should not
        "http_version": version,
        "status": status,
    }


def configure(level: str, fmt: Literal["text", "json"]) -> None:
    """The process's logging: the root logger in the chosen format, uvicorn's loggers into it."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def uvicorn_log_config(fmt: Literal["text", "json"]) -> dict[str, Any] | None:
    """uvicorn's `log_config`: None (its own lines, through our root handler) for JSON."""
    if fmt != "json":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    # uvicorn's loggers then propagate to the root handler `configure` set up
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
