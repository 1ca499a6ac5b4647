"""Schemathesis against a real `imagehub serve` through its own /openapi.json: generated
requests, valid and not, to every operation; no answer may be a 500, and every answer must
match the schema (a documented status, content type, headers and body).

Bounded: a dozen examples per operation and generation mode (valid and invalid input), no
shrinking; the whole run takes well under a minute.
Requests go over HTTP to a subprocess, as an attacker's would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.acceptance.conftest import KEY, Server

AUTH = {"Authorization": f"Bearer {KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"IMAGEHUB_POLL_SECONDS": "0.1", "IMAGEHUB_SHUTDOWN_GRACE_SECONDS": "1"}
    server = Server(tmp_path_factory.mktemp("fuzz") / "data", env).start()
    yield server
    server.stop()


def fuzz(operation: APIOperation, mode: GenerationMode) -> str | None:
    """A dozen generated requests to one operation; the first failure, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12")),
        deadline=None,
        derandomize="FUZZ_EXAMPLES" not in os.environ,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        if case.query and "wait" in case.query:  # keep long-polls short
            case.query["wait"] = 0
        headers = {**(case.headers or {}), **AUTH}
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        return None  # nothing to make invalid: an operation without parameters or body
    except FlakyStrategyDefinition:
        return None  # schemathesis's generators draw from global state: not an answer
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_every_operation_answers_as_documented(hub: Server):
    api = schemathesis.openapi.from_url(hub.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 20
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz(operation, mode))
    ]
    assert not failures, "\n\n".join(failures)
