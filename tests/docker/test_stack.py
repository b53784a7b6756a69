"""The image and the stack, built and run: docker/docker-compose.yml started for real.

On an engine of the test's own (tests/docker/engine.py) the stage builds a Debian base with
debootstrap, the Wisata image on it from docker/Dockerfile, and the stand-ins for the images no
registry here serves (MinIO and mc: moto; postgres: Debian's PostgreSQL). Compose 1.29 starts
the compose file with tests/docker/docker-compose.test.yml over it (tests/docker/stack.py says
what that changes), every container on the host's network with ports of 127.0.0.1 picked free.

Then, as an operator would see it: the scheduler trains at start and publishes, the API serves
those models and its health check passes, the containers run as uid 10001 on a read-only root,
a restarted API serves the same versions without a new training, a lost S3 server degrades the
service and its return brings recovery, and the scheduler stops cleanly on ``docker stop``.
The tests run in this order, on one stack.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.docker.stack import BUCKET, MODELS, PREFIX, Stack, wait_for

pytestmark = pytest.mark.slow

UID = "10001"
# A user of the demo data (service/sample_data) the stack seeds its database with.
USER = "u001"


def _recommend(stack: Stack) -> dict[str, Any]:
    code, answer = stack.get(f"/api/frontend/recommendations?user_id={USER}&algorithm=hybrid")
    assert code == 200, answer
    assert answer["items"], answer
    return dict(answer)


def test_the_scheduler_trains_at_start_and_publishes_to_the_bucket(stack: Stack) -> None:
    stored = stack.stored_versions()
    assert set(stored) == set(MODELS), stack.logs("retrain")
    # One training, at start: one version of each artifact.
    assert {name: len(ids) for name, ids in stored.items()} == dict.fromkeys(MODELS, 1)
    s3 = stack.s3()
    for name in MODELS:
        metadata = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}.pkl")["Metadata"]
        assert metadata["model"] == name
        assert len(metadata["sha256"]) == 64
        assert metadata["signature"]  # signed with the stack's WISATA_ARTIFACT_KEY
        assert metadata["data-watermark"]  # trained from the database db-init seeded
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    retrain = stack.container("retrain")
    assert retrain.status == "running"  # the scheduler waits for its cron now


def test_the_api_serves_those_models_and_its_health_check_passes(stack: Stack) -> None:
    stored = stack.stored_versions()
    s3 = stack.s3()
    code, status = stack.get("/api/ml/status")
    assert code == 200, status
    for name in MODELS:
        model = status["models"][name]
        assert model["state"] == "loaded", model
        assert model["artifact"]["version_id"] == stored[name][0]
        head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}.pkl")
        assert model["checksum"] == head["Metadata"]["sha256"]
    assert status["storage"]["reachable"] is True
    assert status["database"]["reachable"] is True
    answer = _recommend(stack)
    assert answer["user_id"] == USER

    # The image's HEALTHCHECK, run by the engine: its first probe comes after its interval.
    health = wait_for(
        "the api's first health check",
        lambda: None if stack.health("api") == "starting" else stack.health("api"),
        timeout=180,
        details=lambda: stack.logs("api"),
    )
    assert health == "healthy", stack.container("api").attrs["State"]["Health"]


def test_the_containers_run_as_uid_10001_on_a_read_only_root(stack: Stack) -> None:
    for service in ("api", "retrain"):
        container = stack.container(service)
        container.reload()
        assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
        processes = container.top(ps_args="-o pid,uid,args")["Processes"]
        assert processes and {row[1] for row in processes} == {UID}, processes
        # Even root, in the container, cannot write to its root filesystem.
        probe = ["python", "-c", "open('/opt/wisata/probe', 'w')"]
        written = container.exec_run(probe, user="0")
        assert written.exit_code != 0
        assert b"Read-only file system" in written.output, written.output
        # /tmp is the writable tmpfs the compose file gives it.
        assert container.exec_run(["python", "-c", "open('/tmp/probe', 'w')"]).exit_code == 0
    init = stack.container("db-init")
    init.reload()
    assert init.attrs["State"]["ExitCode"] == 0
    assert init.attrs["Config"]["User"] == "wisata"
    assert init.attrs["HostConfig"]["ReadonlyRootfs"] is True


def test_a_restarted_api_serves_the_same_versions_without_training(stack: Stack) -> None:
    served, stored = stack.served_versions(), stack.stored_versions()
    api = stack.container("api")
    started = api.attrs["State"]["StartedAt"]

    api.restart(timeout=30)
    stack.wait_ready(timeout=300)

    api.reload()
    assert api.attrs["State"]["StartedAt"] != started  # a new process
    assert stack.served_versions() == served
    assert stack.stored_versions() == stored  # nothing was trained and published again
    assert stack.get("/api/ml/status")[1]["job"] is None
    _recommend(stack)


def test_stopping_the_s3_server_degrades_the_service_and_starting_it_recovers(
    stack: Stack,
) -> None:
    served = stack.served_versions()
    s3 = stack.container("minio")

    s3.stop(timeout=30)

    def storage(reachable: bool) -> dict[str, Any] | None:
        code, status = stack.get("/api/ml/status")
        return status if code == 200 and status["storage"]["reachable"] is reachable else None

    degraded = wait_for(
        "the API reporting the store unreachable",
        lambda: storage(False),
        timeout=120,
        details=lambda: stack.logs("api", "minio"),
    )
    assert degraded["storage"]["error"]
    # The models in memory keep serving.
    assert {m["state"] for m in degraded["models"].values()} == {"loaded"}
    _recommend(stack)

    s3.start()

    wait_for(
        "the API reporting the store reachable again",
        lambda: storage(True),
        timeout=120,
        details=lambda: stack.logs("api", "minio"),
    )
    assert stack.served_versions() == served
    assert stack.stored_versions() == {name: [version] for name, (version, _) in served.items()}
    _recommend(stack)


def test_the_scheduler_stops_cleanly_on_docker_stop(stack: Stack) -> None:
    retrain = stack.container("retrain")
    retrain.reload()
    # stop_grace_period of the compose file: the engine waits that long before SIGKILL.
    assert retrain.attrs["Config"]["StopTimeout"] == 120

    retrain.stop()  # the container's own grace period

    retrain.reload()
    state = retrain.attrs["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False), state
    assert "SIGTERM received" in retrain.logs(tail=20).decode("utf-8", "replace")
