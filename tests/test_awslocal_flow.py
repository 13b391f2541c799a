"""The plain-CLI path of the README on the `local` build: `awslocal s3 mb`, `awslocal cloudformation package`,
`awslocal cloudformation deploy`, without deploy.py.

awslocal (awscli-local, with AWS CLI v1) adds `--endpoint-url` and, for `cloudformation package|deploy`,
`--s3-endpoint-url`, from LOCALSTACK_HOST (default localhost:4566; AWS_ENDPOINT_URL, when set, wins), so
the packaged TemplateURLs are path-style URLs on the emulator that its CloudFormation fetches.
`cloudformation deploy` polls the stack every 30 s: this test takes about half a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from tests.private_env import private_build
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localstack

PROJECT = Path(__file__).resolve().parents[1]
AWSLOCAL = PROJECT / ".venv-localstack" / "bin" / "awslocal"
FAST_WAITER = {"Delay": 1, "MaxAttempts": 120}


def awslocal(endpoint: str, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run awslocal against `endpoint` the way a user points it at a LocalStack on another port."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    env.update(LOCALSTACK_HOST=urlparse(endpoint).netloc, DISABLE_DEPRECATION_NOTICE="1")
    result = subprocess.run([str(AWSLOCAL), *arguments], cwd=PROJECT, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"awslocal {' '.join(arguments)}: exit {result.returncode}\n{result.stdout}" \
                                   f"\n{result.stderr}"
    return result


def test_package_and_deploy_with_awslocal_reach_create_complete(localstack_endpoint, tmp_path):
    given = urlparse(localstack_endpoint)
    cfn = boto3.client("cloudformation", endpoint_url=localstack_endpoint, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=localstack_endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    build = private_build(tmp_path, f"cli-{suffix}")
    bucket, stack, packaged = f"cli-templates-{suffix}", f"cli-{suffix}-local", tmp_path / "packaged.yaml"

    awslocal(localstack_endpoint, "s3", "mb", f"s3://{bucket}")
    try:
        s3.head_bucket(Bucket=bucket)  # made on the session's LocalStack, not on localhost:4566
        root = build / "local" / "root.json"
        awslocal(localstack_endpoint, "cloudformation", "package", "--template-file", str(root),
                 "--s3-bucket", bucket, "--output-template-file", str(packaged))

        urls = re.findall(r"^ +TemplateURL: (\S+)$", packaged.read_text(encoding="utf-8"), re.MULTILINE)
        assert len(urls) == 5
        assert all(re.fullmatch(rf"{given.scheme}://{re.escape(given.netloc)}/{bucket}/[0-9a-f]{{32}}\.template", url)
                   for url in urls), urls
        try:
            deployed = awslocal(localstack_endpoint, "cloudformation", "deploy", "--template-file", str(packaged),
                                "--stack-name", stack, "--parameter-overrides", "EnableCodeBuild=false",
                                "--capabilities", "CAPABILITY_NAMED_IAM")

            assert f"Successfully created/updated stack - {stack}" in deployed.stdout
            status = awslocal(localstack_endpoint, "cloudformation", "describe-stacks", "--stack-name", stack,
                              "--query", "Stacks[0].StackStatus", "--output", "text")
            assert status.stdout.strip() == "CREATE_COMPLETE"
            resources = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
            assert {(r["LogicalResourceId"], r["ResourceStatus"]) for r in resources} == {
                ("IamStack", "CREATE_COMPLETE"), ("NetworkStack", "CREATE_COMPLETE"),
                ("StorageStack", "CREATE_COMPLETE")}
        finally:
            _delete_stack(cfn, s3, stack)
        with pytest.raises(ClientError, match="does not exist"):
            cfn.describe_stacks(StackName=stack)
        with pytest.raises(ClientError, match="404"):
            s3.head_bucket(Bucket=f"cli-{suffix}-local-artifacts-000000000000-us-east-1")
    finally:
        awslocal(localstack_endpoint, "s3", "rb", f"s3://{bucket}", "--force")


def _delete_stack(cfn, s3, stack: str) -> None:
    """Empty the versioned artifact bucket (its deletion policy is Delete), then delete the stack."""
    try:
        outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except ClientError:
        return  # never created
    artifacts = {o["OutputKey"]: o["OutputValue"] for o in outputs}.get("ArtifactBucketName")
    if artifacts:
        listed = s3.list_object_versions(Bucket=artifacts)
        for version in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
            s3.delete_object(Bucket=artifacts, Key=version["Key"], VersionId=version["VersionId"])
    cfn.delete_stack(StackName=stack)
    cfn.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig=FAST_WAITER)
