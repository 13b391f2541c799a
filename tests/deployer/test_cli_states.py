"""deployer/cli.py: the stack states and faults an emulator cannot produce, each one clear line on stderr,
the right exit code and no traceback.

CloudFormation's replies come from botocore's Stubber on real boto3 clients, handed to ``cli.main``
through ``connect_to`` (the production path makes the Target with ``target.connect``); the replies are
modelled on AWS's. Throttling goes through a real HTTP exchange instead, with a recording server that
answers ``Throttling``: only then do botocore's standard-mode retries happen and can be counted. An
unreachable endpoint is a real closed port.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.retries import standard
from botocore.stub import Stubber

from deployer import cli, events, manifest
from deployer.target import Target
from tests.recording_server import RecordingServer, error_reply
from tools.localstack import free_port

PROJECT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 4, 20, 0, 0, tzinfo=timezone.utc)
LOCAL_STACK = "cicd-platform-local"
LOCAL_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{LOCAL_STACK}/11111111-0000"
PROD_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/cicd-platform-prod/22222222-0000"
STORAGE_ID = ("arn:aws:cloudformation:us-east-1:123456789012:stack/cicd-platform-local-StorageStack-1AB/"
              "33333333-0000")
STACK_TYPE = "AWS::CloudFormation::Stack"


@dataclass(frozen=True)
class StubTarget(Target):
    """A Target whose clients are the stubbed ones given."""

    clients: dict = field(default_factory=dict)

    def client(self, service: str):
        return self.clients[service]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    """`python -m templates_src --env local --env prod` into a private folder."""
    out = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "templates_src", "--env", "local", "--env", "prod", "--out", str(out),
                    "--quiet"], cwd=PROJECT, check=True, timeout=120)
    return out


@pytest.fixture
def aws(monkeypatch, capsys, build_dir):
    """Stubbed clients, and ``aws.run(*argv)`` → (exit code, stdout, stderr) of ``cli.main``."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal: nothing may prompt
    monkeypatch.setattr(cli, "_intervals", lambda target: (0.0, 0.0))
    clients = {name: boto3.client(name, region_name="us-east-1")
               for name in ("cloudformation", "codebuild", "secretsmanager", "sts", "s3")}
    stubbers = {name: Stubber(client) for name, client in clients.items()}
    for stubber in stubbers.values():
        stubber.activate()
    target = StubTarget(session=None, region="us-east-1", endpoint_url=None, is_localstack=False, clients=clients)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--build-dir", str(build_dir)], connect_to=lambda region, endpoint, profile: target)
        out, err = capsys.readouterr()
        return code, out, err

    yield SimpleNamespace(run=run, cfn=clients["cloudformation"], stub=stubbers["cloudformation"],
                          stubbers=stubbers, build_dir=build_dir)
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()


def stack(status: str, stack_id: str = LOCAL_ID, **more) -> dict:
    return {"Stacks": [{"StackName": stack_id.split("/")[1], "StackId": stack_id, "StackStatus": status,
                        "CreationTime": T0, **more}]}


def stack_events(*entries: tuple) -> dict:
    """(stack id, logical id, status, seconds[, reason[, physical id]]) → a DescribeStackEvents reply, newest first."""
    found = []
    for stack_id, logical_id, status, seconds, *rest in entries:
        reason, physical = (rest + ["", ""])[:2]
        own = logical_id == stack_id.split("/")[1]
        entry = {"StackId": stack_id, "StackName": stack_id.split("/")[1], "LogicalResourceId": logical_id,
                 "EventId": f"{logical_id}-{status}-{seconds}", "ResourceStatus": status,
                 "ResourceType": STACK_TYPE if own or logical_id.endswith("Stack") else "AWS::S3::Bucket",
                 "Timestamp": T0 + timedelta(seconds=seconds), "PhysicalResourceId": physical or
                 (stack_id if own else f"{logical_id.lower()}-1")}
        if reason:
            entry["ResourceStatusReason"] = reason
        found.append(entry)
    return {"StackEvents": sorted(found, key=lambda e: e["Timestamp"], reverse=True)}


def arguments(build_dir: Path, *extra: str):
    args = cli._arguments(["deploy", "--env", "local", "--build-dir", str(build_dir), *extra])
    return args, manifest.load("local", build_dir)


def no_traceback(*outputs: str) -> bool:
    return not any("Traceback" in output for output in outputs)


# --- faults: credentials, throttling, endpoint, bugs ---------------------------------------------

def test_expired_credentials_are_one_line_and_exit_2(aws):
    aws.stub.add_client_error("describe_stacks", service_error_code="ExpiredToken", http_status_code=403,
                              service_message="The security token included in the request is expired",
                              expected_params={"StackName": LOCAL_STACK})
    code, out, err = aws.run("deploy", "--env", "local")
    assert code == 2
    assert err == ("error: AWS rejected the credentials (ExpiredToken: The security token included in the request "
                   "is expired); refresh them (`aws sso login` or new access keys) and try again\n")
    assert no_traceback(out, err)


def test_throttling_is_retried_by_standard_mode_then_one_line(build_dir, monkeypatch, capsys):
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)  # no 35 s of back-off

    def throttle(request):
        return error_reply(request, "Throttling", "Rate exceeded") if request.action == "DescribeStacks" else None

    with RecordingServer(throttle) as server:
        code = cli.main(["deploy", "--env", "local", "--build-dir", str(build_dir), "--endpoint-url", server.url])
    out, err = capsys.readouterr()
    assert code == 1
    # target.RETRY_CONFIG: total_max_attempts 8, the first call included
    assert server.operations == ["cloudformation.DescribeStacks"] * 8
    assert err == (f"error: AWS kept throttling DescribeStacks (Throttling: Rate exceeded) after 8 attempts; wait a "
                   f"minute and try again (a stack operation already started goes on: `python deploy.py watch "
                   f"--env local --build-dir {build_dir} --endpoint-url {server.url}`)\n")
    assert no_traceback(out, err)


def test_an_endpoint_nobody_listens_on_is_one_line_and_exit_2_at_once(build_dir):
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "deploy.py", "deploy", "--env", "local", "--build-dir", str(build_dir)],
                            cwd=PROJECT, env={**os.environ, "AWS_ENDPOINT_URL": endpoint}, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (f"error: cannot reach {endpoint} (Connection refused); is LocalStack running? "
                             "Start it with `make local-up`\n")


def test_a_connection_error_inside_botocore_is_one_line_too(build_dir, monkeypatch, capsys):
    # No endpoint is given (AWS itself), so no up-front check: botocore's own error, after its retries.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    endpoint = f"http://127.0.0.1:{free_port()}"
    unreachable = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=endpoint)
    target = StubTarget(session=None, region="us-east-1", endpoint_url=None, is_localstack=False,
                        clients={"cloudformation": unreachable})
    code = cli.main(["outputs", "--env", "local", "--build-dir", str(build_dir)], connect_to=lambda *a: target)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err == f"error: cannot reach {endpoint}/ (Could not connect)\n"
    assert no_traceback(out, err)


def test_an_unexpected_error_is_one_line_not_a_traceback(build_dir, capsys):
    def broken(region, endpoint, profile):
        raise RuntimeError("boom")

    code = cli.main(["outputs", "--env", "local", "--build-dir", str(build_dir)], connect_to=broken)
    out, err = capsys.readouterr()
    assert code == 1
    assert err == ("error: unexpected RuntimeError: boom (a bug in deploy.py; rerun with DEPLOY_TRACEBACK=1 for the "
                   "traceback)\n")


# --- busy stacks -----------------------------------------------------------------------------------

def test_a_busy_stack_is_refused_with_no_wait(aws):
    aws.stub.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": LOCAL_STACK})
    code, out, err = aws.run("deploy", "--env", "local", "--no-wait")
    assert code == 2
    assert err == (f"error: {LOCAL_STACK} is UPDATE_IN_PROGRESS (another operation is running); wait for it to "
                   f"finish (`python deploy.py watch --env local --build-dir {aws.build_dir}`) or rerun without "
                   "--no-wait\n")


def test_a_busy_stack_is_waited_for_with_its_events_shown_then_used(aws, capsys):
    aws.stub.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": LOCAL_STACK})
    before = (LOCAL_ID, LOCAL_STACK, "UPDATE_IN_PROGRESS", 0, "User Initiated")
    aws.stub.add_response("describe_stack_events", stack_events(before), {"StackName": LOCAL_ID})
    later = [before, (LOCAL_ID, "StorageStack", "UPDATE_COMPLETE", 4, "", STORAGE_ID),
             (LOCAL_ID, LOCAL_STACK, "UPDATE_COMPLETE", 5)]
    aws.stub.add_response("describe_stack_events", stack_events(*later), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": STORAGE_ID})
    aws.stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": STORAGE_ID})
    aws.stub.add_response("describe_stack_events", stack_events(*later), {"StackName": LOCAL_ID})
    args, build = arguments(aws.build_dir)
    settled = cli._settle_existing(aws.cfn, LOCAL_STACK, args, build, (0.0, 0.0))
    assert settled["StackStatus"] == "UPDATE_COMPLETE"
    assert capsys.readouterr().out.splitlines() == [
        f"{LOCAL_STACK} is UPDATE_IN_PROGRESS: waiting for it to settle first (at most 3600 s)",
        f"20:00:04 {'StorageStack':<36} {'UPDATE_COMPLETE':<24} {'':>6}  {STACK_TYPE}",
        f"20:00:05 {LOCAL_STACK:<36} {'UPDATE_COMPLETE':<24} {'':>6}  {STACK_TYPE}",
        f"{LOCAL_STACK} settled: UPDATE_COMPLETE",
    ]


def test_ctrl_c_while_watching_says_the_operation_goes_on_and_how_to_follow_it(aws, monkeypatch):
    aws.stub.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": LOCAL_STACK})
    history = stack_events((LOCAL_ID, LOCAL_STACK, "UPDATE_IN_PROGRESS", 0, "User Initiated"))
    for _ in range(3):  # operation_start, prime, the first poll
        aws.stub.add_response("describe_stack_events", history, {"StackName": LOCAL_ID})

    describe_stack = events.describe_stack

    def ctrl_c_while_waiting(cfn, name_or_id):  # Ctrl-C lands while the watcher asks for the stack's status
        if name_or_id == LOCAL_ID:
            raise KeyboardInterrupt
        return describe_stack(cfn, name_or_id)

    monkeypatch.setattr(events, "describe_stack", ctrl_c_while_waiting)
    code, out, err = aws.run("watch", "--env", "local")
    assert code == 130, err
    assert err == (f"error: interrupted: stopped watching. {LOCAL_STACK} goes on in CloudFormation; follow it with "
                   f"`python deploy.py watch --env local --build-dir {aws.build_dir}`; a later deploy picks it up in "
                   "whatever state it is\n")


# --- failed stacks ---------------------------------------------------------------------------------

def test_update_rollback_failed_is_explained_and_needs_yes(aws):
    aws.stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_FAILED"), {"StackName": LOCAL_STACK})
    code, out, err = aws.run("deploy", "--env", "local")
    assert code == 2
    assert err == (f"error: {LOCAL_STACK} is UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back an update "
                   "(often a resource changed or deleted outside CloudFormation); fix the resource, then rerun with "
                   "--yes to continue the rollback, or run `aws cloudformation continue-update-rollback --stack-name "
                   f"{LOCAL_STACK}`\n")


def test_update_rollback_failed_with_yes_continues_the_rollback_then_deploys(aws, capsys):
    aws.stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_FAILED"), {"StackName": LOCAL_STACK})
    failed = (LOCAL_ID, LOCAL_STACK, "UPDATE_ROLLBACK_FAILED", 0)
    aws.stub.add_response("describe_stack_events", stack_events(failed), {"StackName": LOCAL_ID})
    aws.stub.add_response("continue_update_rollback", {}, {"StackName": LOCAL_ID})
    rolled_back = [failed, (LOCAL_ID, LOCAL_STACK, "UPDATE_ROLLBACK_IN_PROGRESS", 3),
                   (LOCAL_ID, LOCAL_STACK, "UPDATE_ROLLBACK_COMPLETE", 9)]
    aws.stub.add_response("describe_stack_events", stack_events(*rolled_back), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stack_events", stack_events(*rolled_back), {"StackName": LOCAL_ID})
    args, build = arguments(aws.build_dir, "--yes")
    settled = cli._settle_existing(aws.cfn, LOCAL_STACK, args, build, (0.0, 0.0))
    assert settled["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"  # an UPDATE change set follows
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(": continuing the rollback")
    assert out[-1] == f"{LOCAL_STACK} is UPDATE_ROLLBACK_COMPLETE: it runs its previous version again"


def test_rollback_complete_with_yes_is_deleted_and_created_afresh(aws, capsys):
    aws.stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": LOCAL_STACK})
    old = (LOCAL_ID, LOCAL_STACK, "ROLLBACK_COMPLETE", 0)
    aws.stub.add_response("describe_stack_events", stack_events(old), {"StackName": LOCAL_ID})
    aws.stub.add_response("delete_stack", {}, {"StackName": LOCAL_ID})
    deleted = [old, (LOCAL_ID, LOCAL_STACK, "DELETE_IN_PROGRESS", 3), (LOCAL_ID, LOCAL_STACK, "DELETE_COMPLETE", 6)]
    aws.stub.add_response("describe_stack_events", stack_events(*deleted), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stacks", stack("DELETE_COMPLETE"), {"StackName": LOCAL_ID})  # AWS: by id
    aws.stub.add_response("describe_stack_events", stack_events(*deleted), {"StackName": LOCAL_ID})
    args, build = arguments(aws.build_dir, "--yes")
    assert cli._settle_existing(aws.cfn, LOCAL_STACK, args, build, (0.0, 0.0)) is None  # → a CREATE change set
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{LOCAL_STACK} is ROLLBACK_COMPLETE: its first create failed and CloudFormation cannot update it: deleting "
        "it before creating it again")


def test_rollback_complete_in_production_is_not_deleted_without_yes(aws):
    aws.stubbers["codebuild"].add_response("list_projects", {"projects": ["cicd-platform-dev-build"]})
    aws.stubbers["secretsmanager"].add_response("describe_secret", {"Name": "github/cicd-platform-token"},
                                                {"SecretId": "github/cicd-platform-token"})
    aws.stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE", PROD_ID), {"StackName": "cicd-platform-prod"})
    code, out, err = aws.run("deploy", "--env", "prod")
    assert code == 2
    assert err == ("error: cicd-platform-prod is ROLLBACK_COMPLETE: its first create failed and CloudFormation cannot "
                   "update it; rerun with --yes to delete it and create it again (a production environment: read "
                   "what failed first)\n")


def test_on_a_terminal_the_user_is_asked_and_no_means_nothing_changes(aws, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    questions = []
    monkeypatch.setattr("builtins.input", lambda question: questions.append(question) or "n")
    aws.stub.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": LOCAL_STACK})
    code, out, err = aws.run("destroy", "--env", "local")
    assert (code, err) == (2, "error: cancelled; nothing was changed\n")
    assert questions == [f"Delete stack {LOCAL_STACK} on AWS (us-east-1)? [y/N] "]


# --- destroy ---------------------------------------------------------------------------------------

BUCKET_NOT_EMPTY = ("The bucket you tried to delete is not empty. You must delete all versions in the bucket. "
                    "(Service: S3, Status Code: 409, Request ID: 8a2b)")


def test_delete_failed_on_destroy_names_each_resource_and_why(aws):
    aws.stub.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": LOCAL_STACK})
    old = (LOCAL_ID, LOCAL_STACK, "CREATE_COMPLETE", 0)
    aws.stub.add_response("describe_stack_events", stack_events(old), {"StackName": LOCAL_ID})
    aws.stub.add_response("delete_stack", {}, {"StackName": LOCAL_ID})
    root_events = stack_events(
        old, (LOCAL_ID, LOCAL_STACK, "DELETE_IN_PROGRESS", 1, "User Initiated"),
        (LOCAL_ID, "StorageStack", "DELETE_IN_PROGRESS", 2, "", STORAGE_ID),
        (LOCAL_ID, "StorageStack", "DELETE_FAILED", 8, f"Embedded stack {STORAGE_ID} was not successfully deleted: "
         "The following resource(s) failed to delete: [ArtifactBucket].", STORAGE_ID),
        (LOCAL_ID, LOCAL_STACK, "DELETE_FAILED", 9, "The following resource(s) failed to delete: [StorageStack]."))
    storage_events = stack_events((STORAGE_ID, "ArtifactBucket", "DELETE_FAILED", 7, BUCKET_NOT_EMPTY))
    aws.stub.add_response("describe_stack_events", root_events, {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stack_events", storage_events, {"StackName": STORAGE_ID})
    aws.stub.add_response("describe_stacks", stack("DELETE_FAILED"), {"StackName": LOCAL_ID})
    aws.stub.add_response("describe_stack_events", storage_events, {"StackName": STORAGE_ID})
    aws.stub.add_response("describe_stack_events", root_events, {"StackName": LOCAL_ID})
    code, out, err = aws.run("destroy", "--env", "local", "--yes")
    assert code == 1
    assert err == (f"error: destroy failed: {LOCAL_STACK} is DELETE_FAILED; these resources could not be deleted:\n"
                   f"  root › StorageStack › ArtifactBucket (AWS::S3::Bucket): {BUCKET_NOT_EMPTY}\n"
                   "fix what keeps them (or delete them yourself), then run `python deploy.py destroy --env local "
                   f"--build-dir {aws.build_dir} --yes`\n")
    assert no_traceback(out, err)
