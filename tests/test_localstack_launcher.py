"""tools/localstack.py, and what LocalStack 4.13.1 Community really answers for the services we use."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tools import localstack as launcher

FAST_WAITER = {"Delay": 1, "MaxAttempts": 120}  # CloudFormation's default polls every 30 s


def unique(prefix: str) -> str:
    """A resource name no other test run on a shared LocalStack is using."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_free_port_is_bindable():
    port = launcher.free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_stop_without_pid_file_does_nothing(tmp_path):
    pid_path = tmp_path / "localstack.pid"

    assert launcher.stop(pid_path) is False
    assert launcher.stop(pid_path) is False


def test_stop_leaves_a_stranger_alone_when_the_pid_file_is_stale(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pid_path = tmp_path / "localstack.pid"
    pid_path.write_text(f"{stranger.pid}\n")
    try:
        assert launcher.stop(pid_path) is False
        assert stranger.poll() is None
        assert not pid_path.exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.localstack
def test_health_reports_our_services_ready(localstack_endpoint):
    services = launcher.health(localstack_endpoint)["services"]

    assert {name for name in launcher.SERVICES if services[name] in launcher.READY} == set(launcher.SERVICES)


@pytest.mark.localstack
def test_s3_bucket_and_object(localstack_endpoint):
    s3 = boto3.client("s3", endpoint_url=localstack_endpoint)
    bucket = unique("launcher-test")

    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")

    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello"
    s3.delete_object(Bucket=bucket, Key="hello.txt")
    s3.delete_bucket(Bucket=bucket)


@pytest.mark.localstack
def test_cloudformation_stack_create_and_delete(localstack_endpoint):
    cloudformation = boto3.client("cloudformation", endpoint_url=localstack_endpoint)
    ssm = boto3.client("ssm", endpoint_url=localstack_endpoint)
    stack, parameter = unique("launcher-test"), unique("/launcher-test/greeting")
    template = {
        "Resources": {
            "Greeting": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": parameter, "Type": "String", "Value": "hello"},
            }
        }
    }

    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig=FAST_WAITER)
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == "hello"

    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig=FAST_WAITER)
    with pytest.raises(ClientError, match="ParameterNotFound"):
        ssm.get_parameter(Name=parameter)


@pytest.mark.localstack
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("codebuild", "list_projects"),
        ("codepipeline", "list_pipelines"),
        ("codestar-connections", "list_connections"),
    ],
)
def test_ci_services_are_not_emulated_by_community(localstack_endpoint, service, operation):
    """deploy.py must not expect these APIs locally: Community answers every call with this 501."""
    client = boto3.client(service, endpoint_url=localstack_endpoint)

    with pytest.raises(ClientError) as raised:
        getattr(client, operation)()

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert raised.value.response["Error"] == {
        "Code": "InternalFailure",
        "Message": f"The API for service {service} is either not included in your current license plan "
        "or has not yet been emulated by LocalStack.",
    }


@pytest.mark.localstack
def test_start_then_stop_leaves_nothing_running(tmp_path):
    port, pid_path = launcher.free_port(), tmp_path / "localstack.pid"

    endpoint = launcher.start(port, tmp_path / "state", tmp_path / "localstack.log", pid_path, ["s3"])
    assert launcher.health(endpoint) is not None

    assert launcher.stop(pid_path) is True
    assert not launcher.port_in_use(port)
    assert not pid_path.exists()
    assert launcher.stop(pid_path) is False
