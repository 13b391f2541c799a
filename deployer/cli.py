"""``python deploy.py deploy|plan|outputs|destroy|watch --env ENV``: the deployer's command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError, ProfileNotFound,
    TokenRetrievalError, UnauthorizedSSOTokenError,
)

from deployer import changeset, events, manifest, package, preflight
from deployer.errors import (
    EXIT_BAD_INPUT, EXIT_DEPLOY_FAILED, EXIT_INTERRUPTED, EXIT_OK, DeployFailed, UsageError,
)
from deployer.target import Target, codebuild_available, connect

EPILOG = """\
exit codes:
  0    success (including "no changes")
  1    the deploy or destroy failed in AWS (the root cause is printed)
  2    bad input, settings, build output or target; nothing was changed
  130  interrupted: the stack operation goes on in CloudFormation (resume with `watch`)

environment: AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566 for LocalStack), AWS_PROFILE, AWS_REGION
"""
# A stack that failed its first create keeps nothing but its name.
FAILED_CREATE_STATES = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}
SUCCESS_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
TEMPLATE_BODY_LIMIT = 51_200
CREDENTIAL_ERROR_CODES = {
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "RequestExpired", "SignatureDoesNotMatch", "AuthFailure",
}
THROTTLING_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deploy.py", description="Package the built templates and deploy the root stack with a change set.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["deploy", "plan", "outputs", "destroy", "watch"],
                        help="deploy: package, change set, execute; plan: the change set only; "
                             "outputs: the stack's outputs; destroy: delete the stack; watch: follow a running operation")
    parser.add_argument("--env", required=True, help="environment built into build/ENV/")
    parser.add_argument("--build-dir", type=Path, default=manifest.BUILD_DIR, help="default: build/")
    parser.add_argument("--stack-name", help="default: the settings' deploy.stack_name (PROJECT-ENV)")
    parser.add_argument("--region", help="default: AWS_REGION, else the settings' region")
    parser.add_argument("--endpoint-url", help="default: AWS_ENDPOINT_URL; LocalStack is detected from it")
    parser.add_argument("--profile", help="default: AWS_PROFILE")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a root parameter (EnableCodeBuild, EnableNat, ...); repeatable")
    parser.add_argument("--yes", action="store_true",
                        help="answer yes: recreate a stack whose first create failed, destroy, continue a "
                             "failed rollback")
    parser.add_argument("--allow-replacement", action="store_true",
                        help="execute even if the change set replaces or removes a stateful resource")
    parser.add_argument("--force", action="store_true", help="create a change set even if nothing changed")
    parser.add_argument("--no-wait", action="store_true",
                        help="refuse instead of waiting when the stack is busy with another operation")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the stack (default 3600)")
    parser.add_argument("--json", action="store_true", help="outputs: print one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _arguments(argv)
    except SystemExit as exit_:  # argparse already printed the problem
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    except DeployFailed as error:
        _error(str(error))
        return EXIT_DEPLOY_FAILED
    except KeyboardInterrupt:
        _error(f"interrupted: stopped watching. The stack operation keeps going in CloudFormation; follow it with "
               f"`python deploy.py watch --env {args.env}`; a later deploy picks it up in whatever state it is.")
        return EXIT_INTERRUPTED
    except EndpointConnectionError as error:
        hint = " Is LocalStack running? Start it with `make local-up`." if _endpoint(args) else ""
        _error(f"cannot reach {error.kwargs.get('endpoint_url', 'the endpoint')}.{hint}")
        return EXIT_BAD_INPUT
    except (NoCredentialsError, ProfileNotFound, TokenRetrievalError, UnauthorizedSSOTokenError) as error:
        _error(f"no usable AWS credentials ({error}); configure them (`aws configure`, `aws sso login`, or "
               "AWS_PROFILE) or pass --endpoint-url for LocalStack")
        return EXIT_BAD_INPUT
    except NoRegionError:
        _error("no AWS region: pass --region or set AWS_REGION")
        return EXIT_BAD_INPUT
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", ""), details.get("Message", "")
        if code in CREDENTIAL_ERROR_CODES:
            _error(f"AWS rejected the credentials ({code}: {message}); refresh them (`aws sso login` or new "
                   "access keys) and try again")
            return EXIT_BAD_INPUT
        if code in THROTTLING_CODES:
            _error(f"AWS kept throttling requests after retries ({code}: {message}); wait a minute and try again")
            return EXIT_DEPLOY_FAILED
        _error(f"AWS refused {error.operation_name}: {code}: {message}")
        return EXIT_DEPLOY_FAILED


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _endpoint(args: argparse.Namespace) -> str | None:
    return args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def _setup(args: argparse.Namespace) -> tuple[manifest.Build, Target, str]:
    build = manifest.load(args.env, args.build_dir)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or build.region
    target = connect(region, _endpoint(args), args.profile or os.environ.get("AWS_PROFILE"))
    return build, target, args.stack_name or build.stack_name


def _intervals(target: Target) -> tuple[float, float]:
    # An emulator settles in about a second: poll fast. On AWS back off to spare the API
    # (DescribeStackEvents throttles at a few calls per second per account).
    return (0.25, 0.5) if target.is_localstack else (2.0, 10.0)


def _confirm(question: str, args: argparse.Namespace, refusal: str) -> None:
    if args.yes:
        return
    if sys.stdin.isatty():
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise UsageError("cancelled; nothing was changed")
    raise UsageError(refusal)


# --- deploy and plan --------------------------------------------------------------------------

def deploy(args: argparse.Namespace, plan_only: bool = False) -> int:
    build = manifest.load(args.env, args.build_dir)
    parameters = manifest.parse_parameters(build, args.param)  # before any AWS call
    explicit = {pair.partition("=")[0] for pair in args.param}
    build, target, stack_name = _setup(args)
    _fit_parameters_to_target(parameters, explicit, target)
    if parameters.get("EnableCodeBuild") == "true" and not target.is_localstack:
        preflight.check_github_source(build, target)
    print(f"{'planning' if plan_only else 'deploying'} {stack_name} ({build.environment}) to {target.name}")

    cfn = target.client("cloudformation")
    interval, max_interval = _intervals(target)
    stack = _settle_existing(cfn, stack_name, args, build, interval, max_interval)

    account = target.client("sts").get_caller_identity()["Account"]
    packaged, path = package.package(build, target, account)
    body = json.dumps(packaged, sort_keys=True)
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        raise UsageError(f"the packaged root {path} is over CloudFormation's {TEMPLATE_BODY_LIMIT}-byte body limit")

    if stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS" and not args.force:
        if _unchanged(cfn, stack, packaged, _effective(packaged, parameters)):
            print(f"no changes: {stack_name} already runs these templates and parameters "
                  "(--force creates a change set anyway)")
            return EXIT_OK

    change_set_type = "CREATE" if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
    tags = {"Project": build.project, "Environment": build.environment}
    created = changeset.create(cfn, stack_name, change_set_type, {"TemplateBody": body}, parameters, tags, interval)
    if created.empty:
        changeset.delete_quietly(cfn, created.id)
        print(f"no changes: {stack_name} is up to date")
        return EXIT_OK

    print(f"change set ({change_set_type.lower()}, {len(created.changes)} changes):")
    for change in created.changes:
        print(change.describe())
    risky = changeset.data_at_risk(build, created.changes)
    if plan_only or (risky and not args.allow_replacement):
        _discard(cfn, created, change_set_type, stack_name)
    if risky and not args.allow_replacement:
        raise UsageError("refusing to execute: data would be lost:\n  " + "\n  ".join(risky)
                         + "\nnothing was changed; rerun with --allow-replacement if that is intended")
    if plan_only:
        print("plan only: the change set was discarded; nothing was changed")
        return EXIT_OK

    watcher = events.Watcher(cfn, created.stack_id)
    watcher.prime()
    started = time.monotonic()
    cfn.execute_change_set(ChangeSetName=created.id)
    final = events.wait_for_settle(cfn, watcher, interval, max_interval, args.timeout)
    status = final["StackStatus"]
    if status not in SUCCESS_STATES:
        raise DeployFailed(_failure_report(stack_name, status, watcher))
    if build.termination_protection and not final.get("EnableTerminationProtection"):
        cfn.update_termination_protection(StackName=stack_name, EnableTerminationProtection=True)
        print(f"termination protection enabled on {stack_name} (settings: deploy.termination_protection)")
    print(f"{stack_name}: {status} in {time.monotonic() - started:.1f} s")
    _print_outputs(final, as_json=False)
    return EXIT_OK


def plan(args: argparse.Namespace) -> int:
    return deploy(args, plan_only=True)


def _fit_parameters_to_target(parameters: dict[str, str], explicit: set[str], target: Target) -> None:
    if target.is_localstack:
        if "EnableNat" in explicit and parameters["EnableNat"] == "true":
            raise UsageError("--param EnableNat=true: LocalStack does not emulate the NAT gateway's Elastic IP; "
                             "deploy NAT to AWS, or drop the parameter")
        for key, reason in (("EnableCodeBuild", "CodeBuild is not emulated by LocalStack Community"),
                            ("EnableNat", "NAT gateways' Elastic IPs are not emulated by LocalStack")):
            if key not in explicit and parameters.get(key) == "true":
                parameters[key] = "false"
                print(f"{key}=false on LocalStack: {reason} (override with --param {key}=true)")
    if parameters.get("EnableCodeBuild") == "true":
        available, why = codebuild_available(target)
        if not available:
            if "EnableCodeBuild" in explicit:
                raise UsageError(f"--param EnableCodeBuild=true: {why}; drop the parameter to deploy without "
                                 "CodeBuild and the pipeline")
            parameters["EnableCodeBuild"] = "false"
            print(f"EnableCodeBuild=false: {why}")


def _settle_existing(cfn: Any, stack_name: str, args: argparse.Namespace, build: manifest.Build,
                     interval: float, max_interval: float) -> dict[str, Any] | None:
    """Bring an existing stack to a state a change set can start from; None if there is no stack."""
    stack = events.describe_stack(cfn, stack_name)
    if stack is None:
        return None
    status = stack["StackStatus"]
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        if args.no_wait:
            raise UsageError(f"{stack_name} is {status} (another operation is running); wait for it or "
                             "rerun without --no-wait")
        print(f"{stack_name} is {status}: waiting for it to settle first")
        watcher = events.Watcher(cfn, stack["StackId"])
        watcher.prime()
        stack = events.wait_for_settle(cfn, watcher, interval, max_interval, args.timeout)
        status = stack["StackStatus"]
        if status == "DELETE_COMPLETE":
            return None
    if status == "REVIEW_IN_PROGRESS":
        print(f"{stack_name} is REVIEW_IN_PROGRESS (a change set was never executed): creating it afresh")
        return stack
    if status in FAILED_CREATE_STATES:
        reason = f"{stack_name} is {status}: its first create failed and CloudFormation cannot update it"
        _confirm(f"{reason}. Delete it and create it again?", args,
                 f"{reason}; rerun with --yes to delete and recreate it"
                 + (" (this is a production environment: check what failed first)" if build.production else ""))
        print(f"{reason}: deleting it before creating it again")
        _delete_and_wait(cfn, stack, interval, max_interval, args.timeout)
        return None
    if status == "UPDATE_ROLLBACK_FAILED":
        reason = (f"{stack_name} is UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back an update "
                  "(often a resource changed or deleted outside CloudFormation)")
        _confirm(f"{reason}. Continue the rollback now?", args,
                 f"{reason}; fix the resource, then rerun with --yes to continue the rollback, or run "
                 f"`aws cloudformation continue-update-rollback --stack-name {stack_name}`")
        cfn.continue_update_rollback(StackName=stack["StackId"])
        watcher = events.Watcher(cfn, stack["StackId"])
        watcher.prime()
        stack = events.wait_for_settle(cfn, watcher, interval, max_interval, args.timeout)
        if stack["StackStatus"] != "UPDATE_ROLLBACK_COMPLETE":
            raise DeployFailed(_failure_report(stack_name, stack["StackStatus"], watcher))
    return stack


def _delete_and_wait(cfn: Any, stack: dict[str, Any], interval: float, max_interval: float,
                     timeout: float) -> events.Watcher:
    watcher = events.Watcher(cfn, stack["StackId"])
    watcher.prime()
    cfn.delete_stack(StackName=stack["StackId"])
    final = events.wait_for_settle(cfn, watcher, interval, max_interval, timeout)
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise DeployFailed(_delete_failure_report(stack["StackName"], final["StackStatus"], watcher))
    return watcher


def _unchanged(cfn: Any, stack: dict[str, Any], packaged: dict[str, Any], parameters: dict[str, str]) -> bool:
    """True if the stack is settled on exactly this packaged template and these parameters.

    The packaged root names every child by the hash of its content, so comparing the root
    compares the whole tree; CloudFormation keeps the original template, nothing else is stored.
    """
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        return False
    deployed = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if deployed != parameters:
        return False
    original = cfn.get_template(StackName=stack["StackId"], TemplateStage="Original")["TemplateBody"]
    if isinstance(original, str):
        try:
            original = json.loads(original)
        except ValueError:
            return False
    return original == packaged


def _effective(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    """Every parameter's value as CloudFormation will record it: given, else the default."""
    declared = template.get("Parameters", {})
    return {name: parameters.get(name, spec.get("Default")) for name, spec in declared.items()}


def _discard(cfn: Any, created: changeset.ChangeSet, change_set_type: str, stack_name: str) -> None:
    changeset.delete_quietly(cfn, created.id)
    if change_set_type == "CREATE":
        # A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS behind.
        try:
            cfn.delete_stack(StackName=created.stack_id)
        except ClientError:
            pass


def _failure_report(stack_name: str, status: str, watcher: events.Watcher) -> str:
    cause = events.root_cause(watcher.events)
    lines = [events.describe_root_cause(cause) if cause else "root cause: no failed resource was reported"]
    rollback = {
        "ROLLBACK_COMPLETE": "the create was rolled back; the next deploy offers to delete and recreate the stack",
        "ROLLBACK_FAILED": "the rollback failed too; the next deploy offers to delete and recreate the stack",
        "UPDATE_ROLLBACK_COMPLETE": "the update was rolled back; the stack runs its previous version",
        "UPDATE_ROLLBACK_FAILED": "the rollback failed; fix the resource, then deploy again with --yes to continue it",
    }.get(status, "")
    lines.append(f"deploy failed: {stack_name} is {status}" + (f": {rollback}" if rollback else ""))
    return "\n".join(lines)


def _delete_failure_report(stack_name: str, status: str, watcher: events.Watcher) -> str:
    failed = [e for e in watcher.events if e.status == "DELETE_FAILED" and not e.echoes_another_failure]
    lines = [f"destroy failed: {stack_name} is {status}; these resources could not be deleted:"]
    lines += [f"  {e.path} › {e.logical_id} ({e.resource_type}): {e.reason}" for e in failed] or ["  (none reported)"]
    return "\n".join(lines)


# --- outputs, watch, destroy ------------------------------------------------------------------

def outputs(args: argparse.Namespace) -> int:
    build, target, stack_name = _setup(args)
    stack = events.describe_stack(target.client("cloudformation"), stack_name)
    if stack is None:
        raise UsageError(f"no stack {stack_name} on {target.name}; deploy it with "
                         f"`python deploy.py deploy --env {build.environment}`")
    _print_outputs(stack, as_json=args.json)
    return EXIT_OK


def _print_outputs(stack: dict[str, Any], as_json: bool) -> None:
    values = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if as_json:
        print(json.dumps(dict(sorted(values.items())), indent=2))
        return
    print("outputs:")
    width = max((len(key) for key in values), default=0)
    for key, value in sorted(values.items()):
        print(f"  {key:<{width}}  {value}")


def watch(args: argparse.Namespace) -> int:
    _, target, stack_name = _setup(args)
    cfn = target.client("cloudformation")
    stack = events.describe_stack(cfn, stack_name)
    if stack is None:
        raise UsageError(f"no stack {stack_name} on {target.name}")
    interval, max_interval = _intervals(target)
    watcher = events.Watcher(cfn, stack["StackId"])
    watcher.prime()
    final = events.wait_for_settle(cfn, watcher, interval, max_interval, args.timeout)
    print(f"{stack_name}: {final['StackStatus']}")
    return EXIT_OK if not final["StackStatus"].endswith(("FAILED", "ROLLBACK_COMPLETE")) else EXIT_DEPLOY_FAILED


def destroy(args: argparse.Namespace) -> int:
    build, target, stack_name = _setup(args)
    if build.production and not args.yes:
        raise UsageError(f"{build.environment} is a production environment: destroying it needs --yes")
    cfn = target.client("cloudformation")
    stack = events.describe_stack(cfn, stack_name)
    if stack is None:
        print(f"nothing to destroy: no stack {stack_name} on {target.name}")
        return EXIT_OK
    if stack.get("EnableTerminationProtection"):
        raise UsageError(
            f"{stack_name} has termination protection (settings: deploy.termination_protection); it stays. "
            f"To destroy it on purpose: `aws cloudformation update-termination-protection "
            f"--no-enable-termination-protection --stack-name {stack_name}`, then destroy again")
    _confirm(f"Delete stack {stack_name} on {target.name}?", args,
             f"destroying {stack_name} needs confirmation: rerun with --yes")
    bucket = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}.get("ArtifactBucketName")
    if bucket and build.bucket_deletion_policy == "Delete":
        removed = empty_bucket(target, bucket)
        print(f"emptied artifact bucket {bucket} ({removed} object versions; its deletion policy is Delete)")
    interval, max_interval = _intervals(target)
    print(f"deleting {stack_name}")
    _delete_and_wait(cfn, stack, interval, max_interval, args.timeout)
    print(f"{stack_name}: DELETE_COMPLETE")
    if bucket and build.bucket_deletion_policy == "Retain":
        print(f"kept artifact bucket {bucket} (deletion policy Retain). A new stack of this environment needs the "
              f"name: delete it yourself when its data is no longer needed (`aws s3 rb s3://{bucket} --force` "
              "after removing all versions)")
    return EXIT_OK


def empty_bucket(target: Target, bucket: str) -> int:
    """Delete every object version and delete marker: a versioned bucket must be empty to go."""
    s3 = target.client("s3")
    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
            removed += len(doomed)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
    return removed


COMMANDS = {"deploy": deploy, "plan": plan, "outputs": outputs, "destroy": destroy, "watch": watch}
