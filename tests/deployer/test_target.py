"""deployer/target.py: is the endpoint LocalStack (from the URL, else by asking it), and can it run CodeBuild."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse

import boto3
import pytest

from deployer import target
from deployer.errors import UsageError
from tools import localstack as launcher

# Same server as the fixture's 127.0.0.1, spelt so the URL alone does not say loopback: "127.1" is the
# short dotted form the C resolver (inet_aton) expands to 127.0.0.1, and ipaddress does not parse.
OPAQUE_LOOPBACK = "127.1"


@pytest.mark.parametrize("endpoint", [
    "http://localhost:4566",
    "http://LOCALHOST:8080",  # any port on localhost
    "http://127.0.0.1:4510",
    "http://127.0.0.2:4567",  # all of 127.0.0.0/8 is loopback
    "http://[::1]:4567",
    "http://0.0.0.0:4567",
    "http://localstack:4566",  # LocalStack's port on any host (a compose service, a CI sidecar)
    "https://10.0.0.5:4566",
    "https://localhost.localstack.cloud:4566",
    "https://s3.eu-west-1.localhost.localstack.cloud",
])
def test_local_endpoints_are_recognised_from_the_url(endpoint):
    assert target.looks_like_localstack(endpoint) is True


@pytest.mark.parametrize("endpoint", [
    None,
    "",
    "https://cloudformation.us-east-1.amazonaws.com",
    "https://vpce-0123456789abcdef0-abcdefgh.cloudformation.eu-west-1.vpce.amazonaws.com",
    "http://10.0.0.5:4567",
    "https://localstack.cloud.example.com",  # the suffix must be the domain, not a substring
    "http://host:abc",  # a malformed port is not LocalStack's port (botocore refuses the URL anyway)
])
def test_other_endpoints_are_not_recognised_from_the_url(endpoint):
    assert target.looks_like_localstack(endpoint) is False


def test_no_endpoint_is_aws_without_asking_anything():
    assert target.is_localstack(None) is False

    connected = target.connect("eu-west-1", None, None)

    assert (connected.is_localstack, connected.endpoint_url, connected.name) == (False, None, "AWS (eu-west-1)")


def test_local_target_ignores_the_profile_and_uses_test_credentials():
    connected = target.connect("us-east-1", "http://127.0.0.1:4566", "a-profile-this-machine-lacks")

    credentials = connected.session.get_credentials()
    assert (credentials.access_key, credentials.secret_key) == ("test", "test")
    assert connected.name == "LocalStack at http://127.0.0.1:4566"


class _Answer(BaseHTTPRequestHandler):
    """A web server that is not LocalStack: it answers every request with the class's status and body."""

    status, body = 404, b"not found"

    def do_GET(self):  # noqa: N802 - the name http.server dispatches to
        self.send_response(self.status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def other_server():
    """Start a plain HTTP server on 127.0.0.1 answering (status, body); yield its port."""
    servers = []

    def serve(status: int, body: bytes) -> int:
        handler = type("Handler", (_Answer,), {"status": status, "body": body})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "body"), [
    (404, b"not found"),
    (200, b"<html>hello</html>"),
    (200, json.dumps({"status": "ok"}).encode()),
    (200, json.dumps("services").encode()),
])
def test_a_server_that_is_not_localstack_is_not_taken_for_it(other_server, status, body):
    port = other_server(status, body)

    assert target.answers_localstack_health(f"http://127.0.0.1:{port}") is False
    assert target.is_localstack(f"http://{OPAQUE_LOOPBACK}:{port}") is False


def test_nothing_listening_is_not_localstack():
    assert target.answers_localstack_health(f"http://127.0.0.1:{launcher.free_port()}", timeout=1) is False


def test_codebuild_denied_to_this_principal_still_counts_as_available(other_server):
    # What the CodeBuild API answers a principal without codebuild:ListProjects (JSON 1.1 protocol).
    port = other_server(400, json.dumps({"__type": "AccessDeniedException", "message": "User: arn:aws:iam::"
                                         "123456789012:user/ci is not authorized to perform: codebuild:ListProjects"})
                        .encode())
    aws_like = target.Target(boto3.Session(region_name="us-east-1"), "us-east-1", f"http://127.0.0.1:{port}",
                             is_localstack=False)

    assert target.codebuild_available(aws_like) == (True, "")


@pytest.mark.localstack
def test_health_probe_recognises_localstack_on_any_port_and_host(localstack_endpoint):
    given = urlparse(localstack_endpoint)
    if given.hostname not in ("127.0.0.1", "localhost") or given.port == target.LOCALSTACK_PORT:
        pytest.skip(f"{localstack_endpoint} cannot be spelt as an opaque loopback URL on another port")
    opaque = f"http://{OPAQUE_LOOPBACK}:{given.port}"
    assert target.looks_like_localstack(opaque) is False

    assert target.answers_localstack_health(localstack_endpoint) is True
    assert target.is_localstack(opaque) is True
    assert target.connect("us-east-1", opaque, None).is_localstack is True


@pytest.mark.localstack
def test_codebuild_probe_finds_it_missing_on_localstack_community(localstack_endpoint):
    local = target.connect("us-east-1", localstack_endpoint, None)

    assert target.codebuild_available(local) == (
        False,
        f"CodeBuild is not available on LocalStack at {localstack_endpoint} (InternalFailure: The API for service "
        "codebuild is either not included in your current license plan or has not yet been emulated by LocalStack.)",
    )


@pytest.mark.parametrize("endpoint", ["localhost:4566", "127.0.0.1", "ftp://127.0.0.1:4566", "http://:4566",
                                      "http://localhost:port"])
def test_an_endpoint_that_is_not_a_url_is_refused_with_an_example(endpoint):
    with pytest.raises(UsageError) as raised:
        target.connect("us-east-1", endpoint, None)

    assert str(raised.value) == (
        f"the endpoint {endpoint!r} (--endpoint-url or AWS_ENDPOINT_URL) is not an http(s) URL with a host and an "
        "optional numeric port; e.g. http://127.0.0.1:4566")
