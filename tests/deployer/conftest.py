"""Fixtures shared by the deployer's unit tests."""

import boto3
import pytest
from botocore.stub import Stubber


@pytest.fixture
def cfn():
    """A real CloudFormation client whose replies the test queues on ``cfn.stubber`` (AWS's documented shapes)."""
    client = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()
