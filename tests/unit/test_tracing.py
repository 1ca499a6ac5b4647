"""When the OTEL_* variables turn tracing on, and what a traceparent names."""

from __future__ import annotations

import pytest

from imagehub import tracing
from imagehub.settings import Settings
from imagehub.tracing import OtelTracing, Tracing, open_tracing, trace_id_of

OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_an_otel_variable_asks(monkeypatch, env, on):
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().tracing_on is on


def test_open_tracing_builds_the_sdk_only_when_asked(monkeypatch):
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)
    off = open_tracing(Settings())
    assert type(off) is Tracing and not off.enabled
    with off.span("s", {"k": 1}) as span:
        span.set("a", "b")
        assert off.traceparent() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    on = open_tracing(Settings())
    try:
        assert isinstance(on, OtelTracing) and on.enabled
        with on.span("s") as span:
            parent = on.traceparent()
            assert parent is not None
            assert tracing.current_trace_id() == trace_id_of(parent)
        assert on.traceparent() is None, "no span is current any more"
    finally:
        on.shutdown()
    assert tracing.current_trace_id() is None, "a stopped tracing names no trace"


def test_an_exporter_the_hub_does_not_support_leaves_tracing_off(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert not open_tracing(Settings()).enabled
    assert "zipkin is not supported" in caplog.text


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("garbage", None),
        (None, None),
    ],
)
def test_the_trace_id_of_a_traceparent(traceparent, trace_id):
    assert trace_id_of(traceparent) == trace_id
