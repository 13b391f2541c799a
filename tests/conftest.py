"""Shared fixtures: fake AWS credentials for every test, and one LocalStack for the whole session."""

from __future__ import annotations

import os

import pytest

from tools import localstack as launcher

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# A real profile or session token next to the fake keys would only make boto3 fail in confusing ways.
HIDDEN_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN")


@pytest.fixture(scope="session", autouse=True)
def fake_aws_credentials():
    """No test can reach a real AWS account with the developer's credentials."""
    # monkeypatch is function-scoped, so save and restore os.environ by hand.
    saved = {name: os.environ.get(name) for name in (*FAKE_AWS_ENV, *HIDDEN_AWS_ENV)}
    for name in HIDDEN_AWS_ENV:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENV)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def localstack_endpoint(tmp_path_factory):
    """The URL of a LocalStack for this session: the one named by AWS_ENDPOINT_URL or
    LOCALSTACK_ENDPOINT if set, else our own on a free port with throw-away state, stopped at the end."""
    given = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("LOCALSTACK_ENDPOINT")
    if given:
        yield given
        return
    folder = tmp_path_factory.mktemp("localstack")
    pid_path = folder / "localstack.pid"
    try:
        yield launcher.start(launcher.free_port(), folder / "state", folder / "localstack.log", pid_path)
    finally:
        launcher.stop(pid_path)
