"""deploy.py against LocalStack when things go wrong: a child stack that fails, stacks left failed or
half-made, Ctrl-C while watching, the data guard, destroy of protected and Retain environments.

Three private copies of the `local` build, each with a project name of its own (LocalStack keeps S3
object data in /tmp/localstack-s3-storage/<bucket> for every instance on the machine), each deployed
once and taken through its story by the tests below, in file order:

- ``failing``: NetworkStack's PublicSubnetB gets a CIDR outside the VPC, which LocalStack's EC2 refuses;
- ``tripwire``: the root gets a subnet in a VPC that does not exist, which fails before any child starts;
- ``protected``: ``deletion_policy = "Retain"`` and ``termination_protection = true``.

What LocalStack 4.13.1 does, measured here and asserted below: a failed nested stack is not rolled back
and its parent ends CREATE_COMPLETE (the nested stack provider reports the failure without a reason,
and the engine takes an empty reason for success); a failure in the root itself does end
ROLLBACK_COMPLETE; deleting either reports DELETE_FAILED for the resources never made, then goes on to
DELETE_COMPLETE; IncludeNestedStacks is ignored and nested stacks are not updated by a parent's update
(logged "the update operation is not implemented"); termination protection is stored but not enforced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from deployer import events
from tests.private_env import deploy_py, described, private_build

pytestmark = pytest.mark.localstack

PROJECT = Path(__file__).resolve().parents[1]
BAD_CIDR_REASON = ("Resource provider operation failed: An error occurred (InvalidSubnet.Range) when calling the "
                   "CreateSubnet operation: The CIDR '10.99.1.0/24' is invalid.")


# --- helpers ---------------------------------------------------------------------------------------

def variant(build_dir: Path, name: str, file_name: str, change) -> Path:
    """A copy of the build with ``change(template)`` applied to one JSON template."""
    copy = build_dir.parent / name
    shutil.copytree(build_dir, copy)
    path = copy / "local" / file_name
    template = json.loads(path.read_text(encoding="utf-8"))
    change(template)
    path.write_text(json.dumps(template, indent=1), encoding="utf-8")
    return copy





def stack_or_none(cfn, name: str) -> dict | None:
    return events.describe_stack(cfn, name)


@pytest.fixture(scope="module")
def aws(localstack_endpoint):
    return SimpleNamespace(**{name: boto3.client(name, endpoint_url=localstack_endpoint, region_name="us-east-1")
                              for name in ("cloudformation", "s3")})


def environment(tmp_path_factory, prefix: str, *replacements: tuple[str, str]) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp(prefix)
    project = f"{prefix}-{uuid.uuid4().hex[:8]}"
    build_dir = private_build(folder, project, *replacements)
    return SimpleNamespace(project=project, stack=f"{project}-local", build=build_dir, folder=folder,
                           bucket=f"{project}-local-artifacts-000000000000-us-east-1", state={})


def destroy_quietly(env: SimpleNamespace, aws, endpoint: str) -> None:
    """Teardown: whatever a failed test left, remove the stack and its bucket."""
    try:
        aws.cloudformation.update_termination_protection(StackName=env.stack, EnableTerminationProtection=False)
    except ClientError:
        pass
    deploy_py(endpoint, "destroy", "--env", "local", "--build-dir", str(env.build), "--yes")
    empty_and_delete_bucket(aws.s3, env.bucket)


S3_STORAGE = Path("/tmp/localstack-s3-storage")  # tools/localstack.py: where LocalStack keeps S3 objects


def empty_and_delete_bucket(s3, bucket: str) -> None:
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=bucket)
    except ClientError:
        pass
    # LocalStack leaves the bucket's folder behind; the name is this module's own (a unique project)
    shutil.rmtree(S3_STORAGE / bucket, ignore_errors=True)


# --- a child that fails ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def failing(tmp_path_factory, aws, localstack_endpoint):
    env = environment(tmp_path_factory, "fail")

    def outside_the_vpc(template):
        template["Resources"]["PublicSubnetB"]["Properties"]["CidrBlock"] = "10.99.1.0/24"

    env.broken = variant(env.build, "broken", "network.json", outside_the_vpc)
    yield env
    destroy_quietly(env, aws, localstack_endpoint)


def test_a_failing_child_prints_the_root_cause_first_then_the_outcome(failing, aws, localstack_endpoint):
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(failing.broken))
    assert result.returncode == 1, described(result)
    assert result.stderr == (
        f"error: root cause: root › NetworkStack › PublicSubnetB (AWS::EC2::Subnet) CREATE_FAILED: {BAD_CIDR_REASON}\n"
        f"deploy failed: {failing.stack} reports CREATE_COMPLETE, but NetworkStack is CREATE_FAILED and nothing was "
        "rolled back (LocalStack 4.13 does not roll back a failed nested stack); the next deploy deletes and "
        "recreates it (with --yes, or after a prompt)\n")
    # the failed child's own events were found and streamed, though its parent never named it
    assert re.search(rf"^\d\d:\d\d:\d\d   PublicSubnetB +CREATE_FAILED +(\d+\.\ds +)?AWS::EC2::Subnet  "
                     rf"{re.escape(BAD_CIDR_REASON)}$", result.stdout, re.MULTILINE), described(result)
    failing.state["root_id"] = aws.cloudformation.describe_stacks(StackName=failing.stack)["Stacks"][0]["StackId"]


def test_the_half_made_stack_is_recreated_only_with_yes(failing, aws, localstack_endpoint):
    before = aws.cloudformation.describe_stacks(StackName=failing.stack)["Stacks"][0]
    refused = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(failing.build))
    assert refused.returncode == 2, described(refused)
    assert refused.stderr == (
        f"error: {failing.stack} is CREATE_COMPLETE, but NetworkStack is CREATE_FAILED: its first create failed "
        "without being rolled back; rerun with --yes to delete it and create it again\n")
    assert aws.cloudformation.describe_stacks(StackName=failing.stack)["Stacks"][0]["StackId"] == before["StackId"]

    recreated = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(failing.build), "--yes")
    assert recreated.returncode == 0, described(recreated)
    assert (f"{failing.stack} is CREATE_COMPLETE, but NetworkStack is CREATE_FAILED: its first create failed "
            "without being rolled back: deleting it before creating it again") in recreated.stdout
    stack = aws.cloudformation.describe_stacks(StackName=failing.stack)["Stacks"][0]
    assert stack["StackId"] != before["StackId"] and stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["VpcId"].startswith("vpc-")


def test_the_deleted_failed_stacks_are_still_walked_by_their_ids(failing, aws):
    old_root = failing.state["root_id"]
    assert aws.cloudformation.describe_stacks(StackName=old_root)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    watcher = events.Watcher(aws.cloudformation, old_root, log=lambda line: None)
    watcher.poll()
    assert events.describe_root_cause(events.root_cause(watcher.events)) == (
        f"root cause: root › NetworkStack › PublicSubnetB (AWS::EC2::Subnet) CREATE_FAILED: {BAD_CIDR_REASON}")
    network_id = next(stack_id for stack_id, path in watcher.stacks.items() if path == "root › NetworkStack")
    assert aws.cloudformation.describe_stacks(StackName=network_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


# --- a failure in the root itself, after a leftover change set --------------------------------------

@pytest.fixture(scope="module")
def tripwire(tmp_path_factory, aws, localstack_endpoint):
    env = environment(tmp_path_factory, "trip")

    def subnet_in_a_missing_vpc(template):
        # Every child waits for it, so it fails before anything (and no bucket) is made.
        template["Resources"]["Tripwire"] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": "vpc-0000000000000000a", "CidrBlock": "10.99.0.0/24"}}
        for child in ("StorageStack", "NetworkStack"):
            template["Resources"][child]["DependsOn"] = "Tripwire"

    env.broken = variant(env.build, "broken", "root.json", subnet_in_a_missing_vpc)
    yield env
    destroy_quietly(env, aws, localstack_endpoint)


def test_a_leftover_review_in_progress_stack_is_created_afresh(tripwire, aws, localstack_endpoint):
    # what an interrupted `plan` or a console user can leave: a CREATE change set, never executed
    aws.cloudformation.create_change_set(
        StackName=tripwire.stack, ChangeSetName="left-over", ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}))
    deadline = time.monotonic() + 30
    while aws.cloudformation.describe_stacks(StackName=tripwire.stack)["Stacks"][0]["StackStatus"] != \
            "REVIEW_IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(tripwire.broken))
    assert (f"{tripwire.stack} is REVIEW_IN_PROGRESS (a change set was never executed; it holds no resources): "
            "creating it afresh") in result.stdout, described(result)
    # ... and the create went ahead, to fail on the tripwire
    assert result.returncode == 1, described(result)
    reason = re.search(r"Tripwire \(AWS::EC2::Subnet\) CREATE_FAILED: (.+)\n", result.stderr).group(1)
    assert result.stderr == (
        f"error: root cause: root › Tripwire (AWS::EC2::Subnet) CREATE_FAILED: {reason}\n"
        f"deploy failed: {tripwire.stack} is ROLLBACK_COMPLETE: the create was rolled back; the next deploy deletes "
        "and recreates it (with --yes, or after a prompt)\n")
    assert "InvalidVpcID.NotFound" in reason


def test_rollback_complete_is_refused_without_yes(tripwire, localstack_endpoint):
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(tripwire.build))
    assert result.returncode == 2, described(result)
    assert result.stderr == (
        f"error: {tripwire.stack} is ROLLBACK_COMPLETE: its first create failed and CloudFormation cannot update it; "
        "rerun with --yes to delete it and create it again\n")


def test_rollback_complete_with_yes_is_deleted_and_created_afresh(tripwire, aws, localstack_endpoint):
    before = aws.cloudformation.describe_stacks(StackName=tripwire.stack)["Stacks"][0]
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(tripwire.build), "--yes")
    assert result.returncode == 0, described(result)
    assert (f"{tripwire.stack} is ROLLBACK_COMPLETE: its first create failed and CloudFormation cannot update it: "
            "deleting it before creating it again") in result.stdout
    stack = aws.cloudformation.describe_stacks(StackName=tripwire.stack)["Stacks"][0]
    assert stack["StackId"] != before["StackId"] and stack["StackStatus"] == "CREATE_COMPLETE"


# --- a protected environment: Ctrl-C, the data guard, destroy -------------------------------------------

@pytest.fixture(scope="module")
def protected(tmp_path_factory, aws, localstack_endpoint):
    env = environment(tmp_path_factory, "prot", ('deletion_policy = "Delete"', 'deletion_policy = "Retain"'),
                      ("termination_protection = false", "termination_protection = true"))

    def rename_the_bucket(template):
        template["Resources"]["ArtifactBucket"]["Properties"]["BucketName"]["Fn::Sub"] = (
            "${ProjectName}-${Environment}-archive-${AWS::AccountId}-${AWS::Region}")

    def rename_the_logical_id(template):
        template["Resources"]["ArtifactStore"] = template["Resources"].pop("ArtifactBucket")
        text = json.dumps(template).replace('"ArtifactBucket"', '"ArtifactStore"')
        template.clear()
        template.update(json.loads(text))

    env.renamed = variant(env.build, "renamed-bucket", "storage.json", rename_the_bucket)
    env.moved = variant(env.build, "moved-bucket", "storage.json", rename_the_logical_id)
    yield env
    destroy_quietly(env, aws, localstack_endpoint)


def test_ctrl_c_while_watching_exits_130_and_watch_resumes(protected, localstack_endpoint):
    process = subprocess.Popen(
        [sys.executable, "deploy.py", "deploy", "--env", "local", "--build-dir", str(protected.build)], cwd=PROJECT,
        env={**os.environ, "AWS_ENDPOINT_URL": localstack_endpoint, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stdout:  # the first event of the stack: it is being created and watched
        seen.append(line)
        if re.match(rf"^\d\d:\d\d:\d\d {re.escape(protected.stack)} +CREATE_IN_PROGRESS", line):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(seen) + out + err
    assert err == (f"error: interrupted: stopped watching. {protected.stack} goes on in CloudFormation; follow it "
                   f"with `python deploy.py watch --env local --build-dir {protected.build}`; a later deploy picks it "
                   "up in whatever state it is\n")

    resumed = deploy_py(localstack_endpoint, "watch", "--env", "local", "--build-dir", str(protected.build))
    assert resumed.returncode == 0, described(resumed)
    assert re.search(rf"^\d\d:\d\d:\d\d {re.escape(protected.stack)} +CREATE_IN_PROGRESS", resumed.stdout,
                     re.MULTILINE), "watch replays the operation from its start"
    assert resumed.stdout.splitlines()[-1] == f"{protected.stack}: CREATE_COMPLETE"


def test_the_next_deploy_turns_termination_protection_on(protected, aws, localstack_endpoint):
    # the interrupted deploy never got to it
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(protected.build))
    assert result.returncode == 0, described(result)
    assert result.stdout.splitlines()[-2:] == [
        f"no changes: {protected.stack} already runs these templates and parameters (--force creates a change set "
        "anyway)",
        f"termination protection enabled on {protected.stack} (settings: deploy.termination_protection)"]
    assert aws.cloudformation.describe_stacks(StackName=protected.stack)["Stacks"][0]["EnableTerminationProtection"]


def snapshot(aws, stack: str) -> tuple:
    described_stack = aws.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    template = aws.cloudformation.get_template(StackName=stack)["TemplateBody"]
    change_sets = aws.cloudformation.list_change_sets(StackName=stack)["Summaries"]
    return (described_stack["StackStatus"], described_stack.get("LastUpdatedTime"), json.dumps(template),
            change_sets)


@pytest.mark.parametrize("variant_name, risk", [
    ("renamed", "would be REPLACED (changing BucketName forces a new resource)"),
    ("moved", "would be REMOVED"),
])
def test_a_change_that_loses_the_bucket_is_refused_and_changes_nothing(protected, aws, localstack_endpoint,
                                                                       variant_name, risk):
    before = snapshot(aws, protected.stack)
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir",
                       str(getattr(protected, variant_name)))
    assert result.returncode == 2, described(result)
    assert result.stderr == (
        "error: refusing to execute: data would be lost:\n"
        f"  root › StorageStack › ArtifactBucket (AWS::S3::Bucket) {risk}\n"
        "nothing was changed; rerun with --allow-replacement if that is intended\n")
    # LocalStack's change set says only "Modify StorageStack, Replacement False": the rest is from the templates
    assert ("  Modify  root › StorageStack (AWS::CloudFormation::Stack)\n"
            "  inside nested stacks (from the templates: CloudFormation described no nested change set):\n"
            ) in result.stdout
    assert snapshot(aws, protected.stack) == before
    aws.s3.head_bucket(Bucket=protected.bucket)


def test_allow_replacement_executes_the_change(protected, aws, localstack_endpoint):
    result = deploy_py(localstack_endpoint, "deploy", "--env", "local", "--build-dir", str(protected.renamed),
                       "--allow-replacement")
    assert result.returncode == 0, described(result)
    assert ("--allow-replacement: executing although data would be lost:\n"
            "  root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REPLACED (changing BucketName forces a "
            "new resource)\n") in result.stdout
    assert f"{protected.stack}: UPDATE_COMPLETE in " in result.stdout
    # (LocalStack 4.13.1 marks the nested stack UPDATE_COMPLETE without updating it: the bucket stays as it was.)


def test_destroying_a_production_environment_needs_yes(protected, aws, localstack_endpoint):
    result = deploy_py(localstack_endpoint, "destroy", "--env", "local", "--build-dir", str(protected.build))
    assert result.returncode == 2, described(result)
    assert result.stderr == ("error: local is a production environment (settings: deploy.termination_protection): "
                             "destroying it needs --yes\n")
    assert stack_or_none(aws.cloudformation, protected.stack) is not None


def test_termination_protection_stops_destroy_with_the_way_out(protected, aws, localstack_endpoint):
    # LocalStack stores the flag but would delete the stack anyway: deploy.py checks it itself
    result = deploy_py(localstack_endpoint, "destroy", "--env", "local", "--build-dir", str(protected.build), "--yes")
    assert result.returncode == 2, described(result)
    assert result.stderr == (
        f"error: {protected.stack} has termination protection (settings: deploy.termination_protection); it stays. "
        "To destroy it on purpose: `aws cloudformation update-termination-protection "
        f"--no-enable-termination-protection --stack-name {protected.stack}`, then destroy again\n")
    assert stack_or_none(aws.cloudformation, protected.stack)["StackStatus"] == "UPDATE_COMPLETE"


def test_destroy_of_a_retain_environment_keeps_the_bucket_and_says_so(protected, aws, localstack_endpoint):
    aws.cloudformation.update_termination_protection(StackName=protected.stack, EnableTerminationProtection=False)
    aws.s3.put_object(Bucket=protected.bucket, Key="artifacts/build-1.zip", Body=b"kept")
    result = deploy_py(localstack_endpoint, "destroy", "--env", "local", "--build-dir", str(protected.build), "--yes")
    assert result.returncode == 0, described(result)
    # LocalStack 4.13.1 ignores DeletionPolicy: it put a delete marker on the object, then failed (silently) to
    # delete the bucket, old versions being in it. deploy.py checks the bucket and undoes the markers.
    assert result.stdout.splitlines()[-1] == (
        f"kept artifact bucket {protected.bucket} (deletion policy Retain). A new stack of this environment needs the "
        "name: delete it yourself when its data is no longer needed (`aws s3 rb "
        f"s3://{protected.bucket} --force` after removing all versions); LocalStack 4.13 ignores DeletionPolicy and "
        "deleted 1 of its objects: restored them by removing the delete markers it left")
    assert stack_or_none(aws.cloudformation, protected.stack) is None
    aws.s3.head_bucket(Bucket=protected.bucket)
    assert aws.s3.get_object(Bucket=protected.bucket, Key="artifacts/build-1.zip")["Body"].read() == b"kept"
