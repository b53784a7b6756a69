"""Fixtures shared by every test: a real S3 server (moto), fake AWS credentials, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer, postgres_binaries
from tests.s3server import ThreadedS3Server, fake_aws_environment


@pytest.fixture(scope="session")
def aws_credentials() -> Iterator[dict[str, str]]:
    """Fake AWS credentials and region in the environment, for the whole session.

    Any client created during the tests (in this process or a child) signs with these and
    can never reach real AWS.
    """
    environment = fake_aws_environment()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield environment


@pytest.fixture(scope="session")
def s3_endpoint(aws_credentials: dict[str, str]) -> Iterator[str]:
    """URL of a moto S3 server shared by the session (in a thread of the test process)."""
    with ThreadedS3Server() as server:
        yield server.endpoint


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the session (Debian's package, a temporary cluster)."""
    if postgres_binaries() is None:
        pytest.skip(
            "PostgreSQL is not installed and tests/install_postgres.sh could not install it "
            "(it needs apt-get and root or password-less sudo)"
        )
    with PostgresServer() as server:
        yield server
