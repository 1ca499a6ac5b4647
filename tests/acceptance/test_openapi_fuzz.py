"""Schemathesis against a real `imagehub serve` through its own /openapi.json: generated
requests, valid and not, to every operation; no answer may be a 500, and every answer must
match the schema (a documented status, content type, headers and body); a request the schema
calls valid is accepted; then stateful workflows along the links schemathesis infers (a task
submitted, then read, canceled, streamed; a key made, then read, limited, revoked); and every
path answers an undocumented method 405 with an `Allow` listing exactly its methods.

Bounded: a dozen examples per operation and generation mode (valid and invalid input), no
shrinking; the whole run takes about a minute.
Requests go over HTTP to a subprocess, as an attacker's would. The fuzzer's own admin key is
never revoked nor limited (requests naming it are pointed at a spare key instead).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
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
#: operations whose valid requests the OpenAPI document cannot describe in full: a task's
#: input depends on the model's own table (GET /hub/v1/models/{id} publishes it), an
#: OpenAI-style size on the model's rules, an upload must decode as an image
NOT_DESCRIBED = {"POST /hub/v1/tasks", "POST /v1/images/generations", "POST /v1/images/edits"}
NOT_DESCRIBED |= {"POST /hub/v1/files"}
#: a usage report's time range must run forward and span at most 92 days: no OpenAPI keyword
#: relates two parameters
NOT_DESCRIBED |= {"GET /hub/v1/admin/usage"}


def checks_for(operation: APIOperation, mode: GenerationMode) -> list[object]:
    if mode == GenerationMode.POSITIVE and operation.label not in NOT_DESCRIBED:
        return [*CHECKS, positive_data_acceptance]
    return list(CHECKS)


class Guard:
    """Keeps the fuzzer's key usable: a request naming it is pointed at a spare key."""

    def __init__(self, server: Server) -> None:
        with server.client() as client:
            self.own = client.get("/hub/v1/key").json()["id"]
            made = client.post("/hub/v1/admin/keys", json={"tenant_id": "spare"})
            self.spare = made.json()["id"]

    def prepare(self, case: schemathesis.Case) -> None:
        if case.path_parameters and case.path_parameters.get("key_id") == self.own:
            case.path_parameters["key_id"] = self.spare
        if case.query and "wait" in case.query:  # keep long-polls short
            case.query["wait"] = 0
        if case.headers and "prefer" in {h.lower() for h in case.headers}:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "prefer"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"IMAGEHUB_POLL_SECONDS": "0.1", "IMAGEHUB_SHUTDOWN_GRACE_SECONDS": "1"}
    server = Server(tmp_path_factory.mktemp("fuzz") / "data", env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guard(hub: Server) -> Guard:
    return Guard(hub)


def fuzz(operation: APIOperation, mode: GenerationMode, guard: Guard) -> str | None:
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
        guard.prepare(case)
        headers = {**(case.headers or {}), **AUTH}
        case.call_and_validate(headers=headers, checks=checks_for(operation, mode), timeout=30)

    try:
        run()
    except Unsatisfiable:
        return None  # nothing to make invalid: an operation without parameters or body
    except FlakyStrategyDefinition:
        return None  # schemathesis's generators draw from global state: not an answer
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_every_operation_answers_as_documented(hub: Server, guard: Guard):
    api = schemathesis.openapi.from_url(hub.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 20
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz(operation, mode, guard))
    ]
    assert not failures, "\n\n".join(failures)
    with hub.client() as client:
        assert client.get("/hub/v1/key").status_code == 200, "the fuzzer kept its key"


def test_stateful_workflows_answer_as_documented(hub: Server, guard: Guard):
    api = schemathesis.openapi.from_url(hub.url + "/openapi.json")

    class Workflow(api.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            guard.prepare(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"headers": {**(case.headers or {}), **AUTH}, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(
        settings=settings(
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12")),
            stateful_step_count=6,
            deadline=None,
            derandomize="FUZZ_EXAMPLES" not in os.environ,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    with hub.client() as client:
        assert client.get("/hub/v1/key").status_code == 200, "the fuzzer kept its key"


def test_an_undocumented_method_is_405_with_every_method_of_the_path(hub: Server):
    document = httpx.get(hub.url + "/openapi.json").json()
    ids = {"key_id": "key_x", "task_id": "tsk_x", "model_id": "nano-banana", "file_id": "f_x"}
    ids["webhook_id"] = "msg_x"
    ids["tenant_id"] = "tenant-x"
    with hub.client() as client:
        for path, item in document["paths"].items():
            documented = {m.upper() for m in item} & {"GET", "POST", "PATCH", "PUT", "DELETE"}
            unused = next(m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in documented)
            answer = client.request(unused, path.format(**ids))
            assert answer.status_code == 405, (path, unused, answer.status_code)
            allowed = {m.strip() for m in answer.headers["Allow"].split(",")} - {"HEAD"}
            assert allowed == documented, (path, answer.headers["Allow"])
