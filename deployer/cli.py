"""``python deploy.py deploy|plan|outputs|destroy|watch --env ENV``: the deployer's command line."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from botocore.exceptions import (
    BotoCoreError, ClientError, CredentialRetrievalError, HTTPClientError, NoAuthTokenError, NoCredentialsError,
    NoRegionError, PartialCredentialsError, ProfileNotFound, SSOError, TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from deployer import changeset, events, manifest, package, preflight
from deployer.errors import (
    EXIT_BAD_INPUT, EXIT_DEPLOY_FAILED, EXIT_INTERRUPTED, EXIT_OK, DeployFailed, UsageError,
)
from deployer.target import Target, codebuild_available, connect, looks_like_localstack

EPILOG = """\
exit codes:
  0    success (including "no changes")
  1    the deploy or destroy failed in AWS (the root cause is printed), or AWS kept throttling
  2    bad input, settings, build output, credentials or target; nothing was changed
  130  interrupted: the stack operation goes on in CloudFormation (resume with `watch`)

environment: AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566 for LocalStack), AWS_PROFILE, AWS_REGION;
DEPLOY_TRACEBACK=1 adds the traceback to an unexpected error
"""
# A stack whose first create failed keeps nothing but its name: CloudFormation can only delete it.
FAILED_CREATE_STATES = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}
SUCCESS_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
TEMPLATE_BODY_LIMIT = 51_200
CONNECT_TIMEOUT_S = 5.0
CREDENTIAL_ERROR_CODES = {
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "RequestExpired", "SignatureDoesNotMatch", "AuthFailure",
}
THROTTLING_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, ProfileNotFound, CredentialRetrievalError,
                     TokenRetrievalError, SSOError, NoAuthTokenError)


class Interrupted(Exception):
    """Ctrl-C while a stack operation runs: CloudFormation goes on with it, we stop watching."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deploy.py", description="Package the built templates and deploy the root stack with a change set.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["deploy", "plan", "outputs", "destroy", "watch"],
                        help="deploy: package, change set, execute; plan: the change set only; outputs: the "
                             "stack's outputs; destroy: delete the stack; watch: follow a running operation")
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


def main(argv: list[str] | None = None, connect_to: Callable[[str, str | None, str | None], Target] = connect) -> int:
    """Run one command; every failure is one message on stderr and an exit code, never a traceback.

    ``connect_to`` makes the Target (tests pass one whose clients are stubbed).
    """
    try:
        args = _arguments(argv)
    except SystemExit as exit_:  # argparse already printed the problem
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    args.connect_to = connect_to
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    except DeployFailed as error:
        _error(str(error))
        return EXIT_DEPLOY_FAILED
    except Interrupted as error:
        _error(str(error))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _error("interrupted before any stack operation started; the stack is as it was")
        return EXIT_INTERRUPTED
    except TimeoutError as error:
        _error(f"{error} (--timeout); it goes on in CloudFormation: follow it with `{_command_line(args, 'watch')}`")
        return EXIT_DEPLOY_FAILED
    except BotoConnectionError as error:
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url") or _endpoint(args) or "AWS"
        reason = re.sub(r'(?: on| to the)? endpoint URL: "[^"]*"', "", str(error)).strip()
        _error(f"cannot reach {endpoint} ({reason}){_local_hint(args)}")
        return EXIT_BAD_INPUT
    except HTTPClientError as error:
        _error(f"lost the connection to {_endpoint(args) or 'AWS'} ({error}); try again")
        return EXIT_DEPLOY_FAILED
    except CREDENTIAL_ERRORS as error:
        _error(f"no usable AWS credentials ({error}); configure them (`aws configure`, `aws sso login`, or "
               "AWS_PROFILE) or pass --endpoint-url for LocalStack")
        return EXIT_BAD_INPUT
    except NoRegionError:
        _error("no AWS region: pass --region or set AWS_REGION")
        return EXIT_BAD_INPUT
    except ClientError as error:
        return _client_error(error, args)
    except BotoCoreError as error:
        _error(f"the AWS client failed: {error}")
        return EXIT_DEPLOY_FAILED
    except OSError as error:
        _error(f"cannot use {error.filename}: {error.strerror}" if error.filename else str(error))
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - the promise is: no traceback, one line, a hint
        if os.environ.get("DEPLOY_TRACEBACK"):
            traceback.print_exc()
        _error(f"unexpected {type(error).__name__}: {error} (a bug in deploy.py; rerun with DEPLOY_TRACEBACK=1 "
               "for the traceback)")
        return EXIT_DEPLOY_FAILED


def _client_error(error: ClientError, args: argparse.Namespace) -> int:
    details = error.response.get("Error", {})
    code, message = details.get("Code", ""), details.get("Message", "")
    if code in CREDENTIAL_ERROR_CODES:
        _error(f"AWS rejected the credentials ({code}: {message}); refresh them (`aws sso login` or new "
               "access keys) and try again")
        return EXIT_BAD_INPUT
    if code in THROTTLING_CODES:
        attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        _error(f"AWS kept throttling {error.operation_name} ({code}: {message}) after {attempts} attempts; wait a "
               f"minute and try again (a stack operation already started goes on: `{_command_line(args, 'watch')}`)")
        return EXIT_DEPLOY_FAILED
    _error(f"AWS refused {error.operation_name}: {code}: {message}")
    return EXIT_DEPLOY_FAILED


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _endpoint(args: argparse.Namespace) -> str | None:
    return args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def _local_hint(args: argparse.Namespace) -> str:
    return "; is LocalStack running? Start it with `make local-up`" if looks_like_localstack(_endpoint(args)) else ""


def _command_line(args: argparse.Namespace, command: str, *extra: str) -> str:
    """The deploy.py command that does ``command`` for the same stack, as the user would type it."""
    parts = ["python deploy.py", command, "--env", args.env]
    if args.build_dir != manifest.BUILD_DIR:
        parts += ["--build-dir", str(args.build_dir)]
    for option in ("stack_name", "region", "endpoint_url", "profile"):
        if getattr(args, option):
            parts += [f"--{option.replace('_', '-')}", getattr(args, option)]
    return " ".join([*parts, *extra])


def _connect(args: argparse.Namespace, build: manifest.Build) -> tuple[Target, str]:
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or build.region
    endpoint = _endpoint(args)
    if endpoint:
        _check_reachable(endpoint, args)
    target = args.connect_to(region, endpoint, args.profile or os.environ.get("AWS_PROFILE"))
    return target, args.stack_name or build.stack_name


def _check_reachable(endpoint: str, args: argparse.Namespace) -> None:
    """Fail in a moment, not after botocore's 8 retries with back-off (about 35 s), if nothing listens."""
    parsed = urlparse(endpoint)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        port = None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port is None:
        raise UsageError(f"endpoint {endpoint!r} is not an http(s) URL; allowed: e.g. http://127.0.0.1:4566")
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UsageError(f"cannot reach {endpoint} ({reason}){_local_hint(args)}") from None


def _intervals(target: Target) -> tuple[float, float]:
    # An emulator settles in about a second: poll fast. On AWS back off to spare the API
    # (DescribeStackEvents throttles at a few calls per second per account).
    return (0.25, 0.5) if target.is_localstack else (2.0, 10.0)


def _confirm(question: str, args: argparse.Namespace, refusal: str) -> None:
    if args.yes:
        return
    if sys.stdin.isatty():
        try:
            answer = input(f"{question} [y/N] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer in ("y", "yes"):
            return
        raise UsageError("cancelled; nothing was changed")
    raise UsageError(refusal)


def _follow(cfn: Any, watcher: events.Watcher, args: argparse.Namespace, intervals: tuple[float, float],
            start: Callable[[], Any] | None = None, leaving: str | None = None) -> dict[str, Any]:
    """Start (optionally) a stack operation on a stack that is ``leaving`` a status, and watch it settle;
    Ctrl-C stops only the watching."""
    try:
        if start is not None:
            start()
        return events.wait_for_settle(cfn, watcher, *intervals, args.timeout, leaving=leaving)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: stopped watching. {events.stack_name(watcher.root_stack_id)} goes on in CloudFormation; "
            f"follow it with `{_command_line(args, 'watch')}`; a later deploy picks it up in whatever state it is"
        ) from None


# --- deploy and plan --------------------------------------------------------------------------

def deploy(args: argparse.Namespace, plan_only: bool = False) -> int:
    build = manifest.load(args.env, args.build_dir)
    parameters = manifest.parse_parameters(build, args.param)  # before any AWS call
    explicit = {pair.partition("=")[0] for pair in args.param}
    target, stack_name = _connect(args, build)
    _fit_parameters_to_target(parameters, explicit, target)
    if parameters.get("EnableCodeBuild") == "true" and not target.is_localstack:
        preflight.check_github_source(build, target)
    print(f"{'planning' if plan_only else 'deploying'} {stack_name} ({build.environment}) to {target.name}")

    cfn = target.client("cloudformation")
    intervals = _intervals(target)
    stack = _settle_existing(cfn, stack_name, args, build, intervals, plan_only)

    account = target.client("sts").get_caller_identity()["Account"]
    packaged, path = package.package(build, target, account)
    body = json.dumps(packaged, sort_keys=True)
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        raise UsageError(f"the packaged root {path} is over CloudFormation's {TEMPLATE_BODY_LIMIT}-byte body limit")

    effective = _effective(packaged, parameters)
    if stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS" and not args.force:
        if _unchanged(cfn, stack, packaged, effective):
            print(f"no changes: {stack_name} already runs these templates and parameters "
                  "(--force creates a change set anyway)")
            if not plan_only:
                _protect(cfn, build, stack)
            return EXIT_OK

    change_set_type = "CREATE" if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
    tags = {"Project": build.project, "Environment": build.environment}
    created = changeset.create(cfn, stack_name, change_set_type, {"TemplateBody": body}, parameters, tags,
                               intervals[0], max_interval=intervals[1])
    if created.empty:
        changeset.delete_quietly(cfn, created.id)
        print(f"no changes: {stack_name} is up to date")
        if stack is not None and not plan_only:
            _protect(cfn, build, stack)
        return EXIT_OK

    print(f"change set ({change_set_type.lower()}, {len(created.changes)} changes):")
    for change in created.changes:
        print(change.describe())
    derived = changeset.undescribed_nested_changes(cfn, build, created.changes, effective)
    if derived:
        print(f"  inside nested stacks ({changeset.FROM_TEMPLATES}: CloudFormation described no nested change set):")
        for change in derived:
            print(f"  {change.describe()}")
    risky = changeset.data_at_risk(build, [*created.changes, *derived])
    if plan_only or (risky and not args.allow_replacement):
        _discard(cfn, created, change_set_type)
    if risky and not args.allow_replacement:
        raise UsageError("refusing to execute: data would be lost:\n  " + "\n  ".join(risky)
                         + "\nnothing was changed; rerun with --allow-replacement if that is intended")
    if risky:
        print("--allow-replacement: executing although data would be lost:\n  " + "\n  ".join(risky))
    if plan_only:
        print("plan only: the change set was discarded; nothing was changed")
        return EXIT_OK

    watcher = events.Watcher(cfn, created.stack_id)
    watcher.prime()
    started = time.monotonic()
    final = _follow(cfn, watcher, args, intervals, start=lambda: cfn.execute_change_set(ChangeSetName=created.id),
                    leaving="REVIEW_IN_PROGRESS" if change_set_type == "CREATE" else stack["StackStatus"])
    status = final["StackStatus"]
    if status not in SUCCESS_STATES or events.failed_to_deploy(watcher.events, watcher.root_stack_id):
        raise DeployFailed(_failure_report(stack_name, status, watcher, target))
    _protect(cfn, build, final)
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
        # Said whether the build's default was true or already false (README: "the reason is printed").
        for key, reason in (("EnableCodeBuild", "CodeBuild is not emulated by LocalStack Community (override with "
                                                "--param EnableCodeBuild=true where it is, e.g. LocalStack Pro)"),
                            ("EnableNat", "NAT gateways' Elastic IPs are not emulated by LocalStack")):
            if key not in explicit and key in parameters:
                parameters[key] = "false"
                print(f"{key}=false on LocalStack: {reason}")
    if parameters.get("EnableCodeBuild") == "true":
        available, why = codebuild_available(target)
        if not available:
            if "EnableCodeBuild" in explicit:
                raise UsageError(f"--param EnableCodeBuild=true: {why}; drop the parameter to deploy without "
                                 "CodeBuild and the pipeline")
            parameters["EnableCodeBuild"] = "false"
            print(f"EnableCodeBuild=false: {why}")


def _settle_existing(cfn: Any, stack_name: str, args: argparse.Namespace, build: manifest.Build,
                     intervals: tuple[float, float], plan_only: bool = False) -> dict[str, Any] | None:
    """Bring an existing stack to a state a change set can start from; None if there is (now) no stack.

    A plan changes nothing: it waits for a busy stack, but leaves a failed one as it is and says so.
    """
    stack = events.describe_stack(cfn, stack_name)
    if stack is None:
        return None
    if stack["StackStatus"].endswith("_IN_PROGRESS") and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
        stack = _wait_until_idle(cfn, stack, args, intervals)
        if stack is None:
            return None
    status = stack["StackStatus"]
    if status == "REVIEW_IN_PROGRESS":
        # A change set was made but never executed: no resources, so a CREATE change set reuses the stack.
        print(f"{stack_name} is REVIEW_IN_PROGRESS (a change set was never executed; it holds no resources): "
              "creating it afresh")
        return stack
    failed_create = _failed_create(cfn, stack)
    if failed_create and plan_only:
        raise UsageError(f"{failed_create}; `{_command_line(args, 'deploy', '--yes')}` deletes it and creates it "
                         "again; nothing was changed")
    if failed_create:
        production = " (a production environment: read what failed first)" if build.production else ""
        _confirm(f"{failed_create}. Delete it and create it again?", args,
                 f"{failed_create}; rerun with --yes to delete it and create it again{production}")
        print(f"{failed_create}: deleting it before creating it again")
        _delete_and_wait(cfn, stack, args, intervals, doing="could not delete the failed stack")
        return None
    if status == "UPDATE_ROLLBACK_FAILED":
        reason = (f"{stack_name} is UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back an update "
                  "(often a resource changed or deleted outside CloudFormation)")
        if plan_only:
            raise UsageError(f"{reason}; fix the resource, then `{_command_line(args, 'deploy', '--yes')}` continues "
                             "the rollback; nothing was changed")
        _confirm(f"{reason}. Continue the rollback now?", args,
                 f"{reason}; fix the resource, then rerun with --yes to continue the rollback, or run "
                 f"`aws cloudformation continue-update-rollback --stack-name {stack_name}`")
        print(f"{reason}: continuing the rollback")
        stack_id = stack["StackId"]
        watcher = events.Watcher(cfn, stack_id)
        watcher.prime()
        stack = _follow(cfn, watcher, args, intervals, start=lambda: cfn.continue_update_rollback(StackName=stack_id),
                        leaving="UPDATE_ROLLBACK_FAILED")
        if stack["StackStatus"] != "UPDATE_ROLLBACK_COMPLETE":
            cause = events.root_cause(watcher.events)
            raise DeployFailed((events.describe_root_cause(cause) + "\n" if cause else "")
                               + f"the rollback did not finish: {stack_name} is {stack['StackStatus']}")
        print(f"{stack_name} is UPDATE_ROLLBACK_COMPLETE: it runs its previous version again")
    return stack


def _wait_until_idle(cfn: Any, stack: dict[str, Any], args: argparse.Namespace,
                     intervals: tuple[float, float]) -> dict[str, Any] | None:
    """Wait for another operation on the stack to finish, showing its events; None if it deleted the stack."""
    name, status = stack["StackName"], stack["StackStatus"]
    if args.no_wait:
        raise UsageError(f"{name} is {status} (another operation is running); wait for it to finish "
                         f"(`{_command_line(args, 'watch')}`) or rerun without --no-wait")
    print(f"{name} is {status}: waiting for it to settle first (at most {args.timeout:.0f} s)")
    watcher = events.Watcher(cfn, stack["StackId"])
    watcher.prime()
    final = _follow(cfn, watcher, args, intervals)
    print(f"{name} settled: {final['StackStatus']}")
    return None if final["StackStatus"] == "DELETE_COMPLETE" else final


def _failed_create(cfn: Any, stack: dict[str, Any]) -> str | None:
    """Why the stack can only be deleted and made again, or None if it can be updated."""
    name, status = stack["StackName"], stack["StackStatus"]
    if status in FAILED_CREATE_STATES:
        return f"{name} is {status}: its first create failed and CloudFormation cannot update it"
    if status == "DELETE_FAILED":
        return f"{name} is DELETE_FAILED: an earlier delete did not finish and CloudFormation cannot update it"
    if status == "CREATE_COMPLETE":
        # Never so on AWS; LocalStack 4.13.1 ends a create whose nested stack failed like this.
        failed = [summary["LogicalResourceId"]
                  for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack["StackId"])
                  for summary in page["StackResourceSummaries"] if summary["ResourceStatus"] == "CREATE_FAILED"]
        if failed:
            return (f"{name} is CREATE_COMPLETE, but {', '.join(failed)} {'is' if len(failed) == 1 else 'are'} "
                    "CREATE_FAILED: its first create failed without being rolled back")
    return None


def _delete_and_wait(cfn: Any, stack: dict[str, Any], args: argparse.Namespace, intervals: tuple[float, float],
                     doing: str) -> events.Watcher:
    watcher = events.Watcher(cfn, stack["StackId"])
    watcher.prime()
    final = _follow(cfn, watcher, args, intervals, start=lambda: cfn.delete_stack(StackName=stack["StackId"]),
                    leaving=stack["StackStatus"])
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise DeployFailed(_delete_failure_report(stack["StackName"], final["StackStatus"], watcher, doing, args))
    return watcher


def _protect(cfn: Any, build: manifest.Build, stack: dict[str, Any]) -> None:
    """Turn termination protection on where the settings ask for it (also after an interrupted deploy)."""
    if build.termination_protection and not stack.get("EnableTerminationProtection"):
        cfn.update_termination_protection(StackName=stack["StackId"], EnableTerminationProtection=True)
        print(f"termination protection enabled on {stack['StackName']} (settings: deploy.termination_protection)")


def _unchanged(cfn: Any, stack: dict[str, Any], packaged: dict[str, Any], parameters: dict[str, str]) -> bool:
    """True if the stack is settled on exactly this packaged template and these parameters.

    The packaged root names every child by the hash of its content, so comparing the root
    compares the whole tree; CloudFormation keeps the original template, nothing else is stored.
    """
    if stack["StackStatus"] not in SUCCESS_STATES:
        return False
    deployed = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if deployed != parameters:
        return False
    try:
        return changeset.deployed_template(cfn, stack["StackId"]) == packaged
    except ValueError:  # deployed from YAML by another tool: not what we would deploy
        return False


def _effective(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    """Every parameter's value as CloudFormation will record it: given, else the default."""
    declared = template.get("Parameters", {})
    return {name: parameters.get(name, spec.get("Default")) for name, spec in declared.items()}


def _discard(cfn: Any, created: changeset.ChangeSet, change_set_type: str) -> None:
    changeset.delete_quietly(cfn, created.id)
    if change_set_type == "CREATE":
        # A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS behind.
        try:
            cfn.delete_stack(StackName=created.stack_id)
        except ClientError:
            pass


def _failure_report(stack_name: str, status: str, watcher: events.Watcher, target: Target) -> str:
    cause = events.root_cause(watcher.events)
    lines = [events.describe_root_cause(cause) if cause else "root cause: no failed resource was reported"]
    failed = events.failed_to_deploy(watcher.events, watcher.root_stack_id)
    recreate = "the next deploy deletes and recreates it (with --yes, or after a prompt)"
    if status in SUCCESS_STATES and failed:
        which = ", ".join(f"{e.logical_id} is {e.status}" for e in failed)
        quirk = " (LocalStack 4.13 does not roll back a failed nested stack)" if target.is_localstack else ""
        follow = recreate if status == "CREATE_COMPLETE" else "deploy again once the cause is fixed"
        lines.append(f"deploy failed: {stack_name} reports {status}, but {which} and nothing was rolled back"
                     f"{quirk}; {follow}")
        return "\n".join(lines)
    outcome = {
        "ROLLBACK_COMPLETE": f"the create was rolled back; {recreate}",
        "ROLLBACK_FAILED": f"the rollback failed too; {recreate}",
        "CREATE_FAILED": f"nothing was rolled back; {recreate}",
        "UPDATE_ROLLBACK_COMPLETE": "the update was rolled back; the stack runs its previous version",
        "UPDATE_ROLLBACK_FAILED": "the rollback failed; fix the resource, then deploy again with --yes to continue it",
    }.get(status, "")
    lines.append(f"deploy failed: {stack_name} is {status}" + (f": {outcome}" if outcome else ""))
    return "\n".join(lines)


def _delete_failure_report(stack_name: str, status: str, watcher: events.Watcher, doing: str,
                           args: argparse.Namespace) -> str:
    failed = [e for e in watcher.events if e.status == "DELETE_FAILED" and not e.echoes_another_failure]
    lines = [f"{doing}: {stack_name} is {status}; these resources could not be deleted:"]
    lines += [f"  {e.path}{events.SEPARATOR}{e.logical_id} ({e.resource_type}): {e.reason}" for e in failed]
    if not failed:
        lines.append("  (CloudFormation named none; see the events above)")
    lines.append(f"fix what keeps them (or delete them yourself), then run `{_command_line(args, 'destroy', '--yes')}`")
    return "\n".join(lines)


# --- outputs, watch, destroy ------------------------------------------------------------------

def outputs(args: argparse.Namespace) -> int:
    build = manifest.load(args.env, args.build_dir)
    target, stack_name = _connect(args, build)
    stack = events.describe_stack(target.client("cloudformation"), stack_name)
    if stack is None:
        raise UsageError(f"no stack {stack_name} on {target.name}; deploy it with "
                         f"`{_command_line(args, 'deploy')}`")
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
    """Follow the stack's current (or latest) operation from its start, then say how it ended."""
    build = manifest.load(args.env, args.build_dir)
    target, stack_name = _connect(args, build)
    cfn = target.client("cloudformation")
    stack = events.describe_stack(cfn, stack_name)
    if stack is None:
        raise UsageError(f"no stack {stack_name} on {target.name}")
    if stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        print(f"{stack_name}: REVIEW_IN_PROGRESS (a change set waits to be executed; nothing runs)")
        return EXIT_OK
    watcher = events.Watcher(cfn, stack["StackId"])
    watcher.prime(replay_from=events.operation_start(cfn, stack["StackId"]))
    final = _follow(cfn, watcher, args, _intervals(target))
    status = final["StackStatus"]
    if status == "DELETE_FAILED":
        raise DeployFailed(_delete_failure_report(stack_name, status, watcher, "delete failed", args))
    if status.endswith(("_FAILED", "ROLLBACK_COMPLETE")) or events.failed_to_deploy(watcher.events, stack["StackId"]):
        raise DeployFailed(_failure_report(stack_name, status, watcher, target))
    print(f"{stack_name}: {status}")
    return EXIT_OK


def destroy(args: argparse.Namespace) -> int:
    build = manifest.load(args.env, args.build_dir)
    if build.production and not args.yes:  # before any AWS call
        raise UsageError(f"{build.environment} is a production environment (settings: deploy.termination_protection):"
                         " destroying it needs --yes")
    target, stack_name = _connect(args, build)
    cfn = target.client("cloudformation")
    intervals = _intervals(target)
    stack = events.describe_stack(cfn, stack_name)
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS") and \
            stack["StackStatus"] != "REVIEW_IN_PROGRESS":
        stack = _wait_until_idle(cfn, stack, args, intervals)
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
    print(f"deleting {stack_name}")
    watcher = _delete_and_wait(cfn, stack, args, intervals, doing="destroy failed")
    print(f"{stack_name}: DELETE_COMPLETE")
    if bucket and build.bucket_deletion_policy == "Retain":
        started = min((e.timestamp for e in watcher.events), default=None)
        print(_retained_bucket(target, bucket, started))
    return EXIT_OK


def _retained_bucket(target: Target, bucket: str, delete_started: Any) -> str:
    """What became of a bucket whose DeletionPolicy is Retain, checked, not assumed.

    LocalStack 4.13.1 ignores DeletionPolicy (measured): it deletes every object of the bucket (a delete
    marker on each, the bucket being versioned), then the bucket, which fails while old versions remain
    and is ignored. So there the delete markers it made are removed again, which restores the objects.
    """
    s3 = target.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        quirk = " (LocalStack 4.13 ignores DeletionPolicy and deletes an empty bucket)" if target.is_localstack else ""
        return f"the artifact bucket {bucket} is gone although its deletion policy is Retain{quirk}"
    kept = (f"kept artifact bucket {bucket} (deletion policy Retain). A new stack of this environment needs the "
            f"name: delete it yourself when its data is no longer needed (`aws s3 rb s3://{bucket} --force` "
            "after removing all versions)")
    restored = _undo_delete_markers(s3, bucket, delete_started) if target.is_localstack and delete_started else 0
    if restored:
        kept += (f"; LocalStack 4.13 ignores DeletionPolicy and deleted {restored} of its objects: restored them by "
                 "removing the delete markers it left")
    return kept


def _undo_delete_markers(s3: Any, bucket: str, since: Any) -> int:
    """Remove the delete markers made since ``since`` (the server's clock; S3 keeps whole seconds)."""
    floor = since.replace(microsecond=0)
    restored = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for marker in page.get("DeleteMarkers", []):
            if marker.get("IsLatest") and marker["LastModified"] >= floor:
                s3.delete_object(Bucket=bucket, Key=marker["Key"], VersionId=marker["VersionId"])
                restored += 1
    return restored


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
