"""Fuzzing: generated requests to every route of a running service, checked against its schema.

Schemathesis reads ``GET /api/openapi.json`` from a real ``python -m service`` process whose
models are trained (so the 200 answers are reachable), with the admin token set and sent (so
the admin routes run their handlers, not only the 401). For every operation it generates
requests that fit the schema and, where the operation has inputs, requests that do not; on top
of those, requests naming known users, items, jobs and stored versions reach the answers a
random string never would. Every answer must be no 5xx, a documented status, the documented
content type and a body that fits the documented schema; data the schema allows must not be
refused with a 400 and data it forbids must not be accepted.

The training routes are fuzzed like the others: the first accepted request starts a job (a
fraction of a second of fitting with the fixed hybrid weight), and the requests that arrive
while it runs are answered 409, so a run starts a handful of trainings, not hundreds.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from service.ml.recommenders import MODEL_NAMES
from service.sample_data import SAMPLE_DATA_DIR
from tests.reliability.conftest import ADMIN, bucket_url, build, publish, service_env
from tests.s3server import S3ServerProcess
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow

Operation = APIOperation[Any, Any, Any, Any]
Request = Case[Any]

#: Generated requests per operation and generation mode; with the known-id requests and the
#: operations that take no input this makes about 1,900 requests in all.
EXAMPLES = 100
MIN_CASES = 1000
KNOWN_USERS = ("u001", "u150", "u300")
KNOWN_ITEMS = ("1", "12", "62")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


@pytest.fixture(scope="module")
def service(s3_server: S3ServerProcess) -> Iterator[ServeProcess]:
    """The service on a bucket holding the three demo models, admin token set, ready."""
    url = bucket_url()
    asyncio.run(publish(url, s3_server.endpoint, build(SAMPLE_DATA_DIR)))
    env = service_env(url, s3_server.endpoint, WISATA_DATA=str(SAMPLE_DATA_DIR))
    with ServeProcess(env) as server:
        assert server.request("GET", "/readyz")[0] == 200, server.log()
        yield server


def admin() -> dict[str, str]:
    """The admin header, a new dict each time: the transport adds its own headers to it."""
    return dict(ADMIN)


def known_cases(operation: Operation, server: ServeProcess) -> st.SearchStrategy[Request] | None:
    """Requests naming things that exist, for the operations a random string cannot reach."""
    label = operation.label
    if label == "GET /api/frontend/recommendations":
        return st.sampled_from(KNOWN_USERS).flatmap(
            lambda user: operation.as_strategy(query={"user_id": user})
        )
    if label == "GET /api/items/{id}/similar":
        return st.sampled_from(KNOWN_ITEMS).flatmap(
            lambda item: operation.as_strategy(path_parameters={"id": item})
        )
    if label == "POST /api/recommendations":
        rating = st.fixed_dictionaries(
            {"item_id": st.sampled_from(KNOWN_ITEMS), "rating": st.integers(1, 5)}
        )
        body: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
            {"ratings": st.lists(rating, max_size=5)},
            optional={
                "algorithm": st.sampled_from(["content", "collaborative", "hybrid"]),
                "limit": st.integers(1, 100),
                "lambda": st.floats(0, 1),
            },
        )
        return body.map(lambda b: operation.Case(body=b, media_type="application/json"))
    if label == "GET /api/ml/jobs/{job_id}":
        job = server.json("POST", "/api/ml/train/content_based", headers=admin())["job_id"]
        server.wait_job(job, timeout=60, headers=admin())
        return operation.as_strategy(path_parameters={"job_id": job})
    if label == "POST /api/ml/models/{name}/rollback":
        versions = [
            (name, version["version_id"])
            for name in MODEL_NAMES
            for version in server.json("GET", f"/api/ml/models/{name}/versions")["versions"]
        ]
        return st.sampled_from(versions).map(
            lambda pair: operation.Case(
                path_parameters={"name": pair[0]},
                body={"version_id": pair[1]},
                media_type="application/json",
            )
        )
    return None


def fuzz(
    strategy: st.SearchStrategy[Request],
    server: ServeProcess,
    session: requests.Session,
    outcomes: collections.Counter[tuple[str, int]],
) -> None:
    """Send up to :data:`EXAMPLES` drawn requests; raise on the first that fails a check."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: a failure is reproducible
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Request) -> None:
        response = case.call(base_url=server.base, session=session, headers=admin(), timeout=30)
        outcomes[case.operation.label, response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=admin())

    send()


def test_generated_requests_get_documented_answers_and_no_5xx(service: ServeProcess) -> None:
    document = service.json("GET", "/api/openapi.json")
    # from_dict, not from_url: from_url leaves out the route that serves the document itself.
    schema = openapi.from_dict(document)
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"the service's OpenAPI document is not valid: {result.err()}")
        operations.append(result.ok())
    documented = {f"{m.upper()} {p}" for p, methods in document["paths"].items() for m in methods}
    assert {op.label for op in operations} == documented

    # Built before any fuzzing, while no generated request has started a training job.
    known = {op.label: known_cases(op, service) for op in operations}
    outcomes: collections.Counter[tuple[str, int]] = collections.Counter()
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            strategies: list[st.SearchStrategy[Request]] = [operation.as_strategy()]
            if list(operation.iter_parameters()) or operation.body:
                strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
            if (extra := known[operation.label]) is not None:
                strategies.append(extra)
            for strategy in strategies:
                try:
                    fuzz(strategy, service, session, outcomes)
                except Unsatisfiable:
                    # A path parameter of type string with no constraint has no invalid value.
                    continue
                except BaseException as e:  # a schemathesis FailureGroup is a BaseExceptionGroup
                    if not isinstance(e, Exception | BaseExceptionGroup):
                        raise
                    failures.append(f"{operation.label}: {e}")

    summary = _summary(outcomes)
    print(summary)  # the per-route figures RELIABILITY.md quotes (pytest -s)
    assert not failures, "\n\n".join(failures)
    assert sum(outcomes.values()) >= MIN_CASES, summary
    assert not [key for key in outcomes if key[1] >= 500], summary
    assert {label for label, _ in outcomes} == documented
    # Every kind of answer a client relies on was reached, not only the errors.
    for reached in (
        ("GET /api/frontend/recommendations", 200),
        ("GET /api/items/{id}/similar", 200),
        ("POST /api/recommendations", 200),
        ("POST /api/ml/models/{name}/rollback", 200),
        ("GET /api/ml/jobs/{job_id}", 200),
        ("POST /api/ml/reload", 200),
    ):
        assert outcomes[reached] > 0, (reached, summary)
    assert 0 < outcomes["POST /api/ml/train-all", 202] < 20, summary

    # Afterwards the service still serves the three models and logged no unexpected error. (The
    # hybrid may be stale: the fuzzed trainings and rollbacks replace sub-models one at a time.)
    states = {n: m["state"] for n, m in service.json("GET", "/api/ml/status")["models"].items()}
    assert set(states.values()) <= {"loaded", "stale"}, states
    for algorithm in ("content", "collaborative", "hybrid"):
        path = f"/api/frontend/recommendations?user_id=u001&algorithm={algorithm}"
        assert service.json("GET", path)["items"]
    log = service.log()
    assert not re.search(r"Traceback|unexpected error", log), log[-5000:]


def _summary(outcomes: collections.Counter[tuple[str, int]]) -> str:
    by_route: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for (label, status), count in sorted(outcomes.items()):
        by_route[label][status] = count
    lines = [f"{sum(outcomes.values())} requests"]
    lines += [f"  {label}: {statuses}" for label, statuses in by_route.items()]
    return "\n".join(lines)
