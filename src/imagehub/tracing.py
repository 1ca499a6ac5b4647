"""Traces: OpenTelemetry spans when the `OTEL_*` variables ask for them, else nothing at all.

`Tracing()` is the default and does nothing: `span()` hands back one shared object, so a
span costs a method call, and the OpenTelemetry SDK is never imported. `open_tracing` builds
`OtelTracing` (the `otel` extra) when the settings say tracing is on.

A task's trace crosses processes through the W3C `traceparent` of its submit span, which the
task keeps (`Task.traceparent`): the worker's spans (queue wait, attempt, upstream calls,
media writes) and the webhook's are children of that span, in whichever process runs them and
however much later.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from imagehub.settings import Settings

log = logging.getLogger("imagehub.tracing")

Value = str | bool | int | float
Kind = Literal["internal", "server", "client"]

#: the attribute every span about one task carries
TASK_ID = "imagehub.task_id"


class Span(Protocol):
    def set(self, key: str, value: Value) -> None:
        """Add an attribute."""

    def fail(self, code: str) -> None:
        """Mark the span failed with an error class (an error code of the hub)."""

    def rename(self, name: str) -> None:
        """Rename the span (an HTTP span once its route is known)."""


class _NoSpan:
    """The span of no tracing: one shared object, every call a no-op."""

    __slots__ = ()

    def set(self, key: str, value: Value) -> None:
        pass

    def fail(self, code: str) -> None:
        pass

    def rename(self, name: str) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


class Tracing:
    """No tracing: the default, and what `open_tracing` gives when no `OTEL_*` asks for it."""

    enabled = False

    def span(
        self,
        name: str,
        attributes: Mapping[str, Value] | None = None,
        *,
        parent: str | None = None,
        start: datetime | None = None,
        kind: Kind = "internal",
    ) -> AbstractContextManager[Span]:
        """A span around a block: a child of `parent` (a W3C traceparent) when given, else of
        the current span; `start` backdates it (a queue wait that began in another process)."""
        return NO_SPAN

    def traceparent(self) -> str | None:
        """The W3C traceparent of the current span (None: no span, or tracing off)."""
        return None

    def shutdown(self) -> None:
        """Send the spans still buffered (at stop)."""


#: the process's tracing, for log lines to name their trace; set by `OtelTracing`
_current: Tracing = Tracing()


def current_trace_id() -> str | None:
    """The trace id of the current span, as 32 hex digits; None when tracing is off."""
    if not _current.enabled:
        return None
    return _trace_id()


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a W3C traceparent names (`00-<trace id>-<span id>-<flags>`)."""
    if traceparent is None:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _trace_id() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class _OtelSpan:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, key: str, value: Value) -> None:
        self._span.set_attribute(key, value)

    def fail(self, code: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", code)
        self._span.set_status(Status(StatusCode.ERROR, code))

    def rename(self, name: str) -> None:
        self._span.update_name(name)


class OtelTracing(Tracing):
    """Spans through the OpenTelemetry SDK, exported in batches (OTLP/HTTP or the console).

    The SDK reads the rest of its `OTEL_*` variables itself: endpoint, headers, timeout,
    compression, service name and resource attributes, sampler, batch sizes and delays.
    """

    enabled = True

    def __init__(self, exporter: str = "otlp", *, span_exporter: Any = None) -> None:
        """`exporter` names the SDK's exporter; `span_exporter`, an exporter object, replaces it."""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "imagehub"}))
        # a provider of the hub's own, not the global one: nothing outside the hub is traced
        self._provider = TracerProvider(resource=resource)
        chosen: SpanExporter
        if span_exporter is not None:
            chosen = span_exporter
        elif exporter == "console":
            chosen = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            chosen = OTLPSpanExporter()
        self._provider.add_span_processor(BatchSpanProcessor(chosen))
        self._tracer = self._provider.get_tracer("imagehub")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = {
            "internal": trace.SpanKind.INTERNAL,
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
        }
        global _current
        _current = self

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Value] | None = None,
        *,
        parent: str | None = None,
        start: datetime | None = None,
        kind: Kind = "internal",
    ) -> Iterator[Span]:
        context = self._propagator.extract({"traceparent": parent}) if parent else None
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=self._kinds[kind],
            attributes=attributes,
            start_time=int(start.timestamp() * 1e9) if start is not None else None,
        ) as span:
            yield _OtelSpan(span)

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get("traceparent")

    def shutdown(self) -> None:
        global _current
        self._provider.shutdown()
        if _current is self:
            _current = Tracing()


def open_tracing(settings: Settings) -> Tracing:
    """The tracing the settings ask for: `OtelTracing` when an `OTEL_*` variable turns it on."""
    if not settings.tracing_on:
        return Tracing()
    exporter = (settings.otel_traces_exporter or "otlp").strip().lower()
    if exporter not in ("otlp", "console"):
        log.warning(
            "OTEL_TRACES_EXPORTER=%s is not supported (otlp, console): tracing off", exporter
        )
        return Tracing()
    try:
        return OtelTracing(exporter)
    except ImportError as exc:
        log.warning(
            "tracing asked for, but the OpenTelemetry SDK is missing (%s): "
            "pip install 'imagehub[otel]'; tracing off",
            exc,
        )
        return Tracing()
