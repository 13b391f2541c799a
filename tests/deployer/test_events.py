"""deployer/events.py: which failure is the root cause, how it is printed, and how the watcher finds the
events of every nested stack — by id after rollback deleted it (AWS), by name when the parent never
named it (LocalStack 4.13.1). The API replies are botocore Stubber replies modelled on each."""

from __future__ import annotations

import io

from datetime import datetime, timedelta, timezone

import pytest

from deployer import events
from deployer.events import StackEvent

T0 = datetime(2026, 12, 4, 20, 0, 0, tzinfo=timezone.utc)
ROOT_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/app-dev/11111111-aaaa-bbbb-cccc-000000000001"
NETWORK_ID = ("arn:aws:cloudformation:us-east-1:123456789012:stack/app-dev-NetworkStack-1ABCDEF/"
              "22222222-aaaa-bbbb-cccc-000000000002")
SUBNET_REASON = ("Resource handler returned message: \"The CIDR '10.99.1.0/24' is invalid.\" "
                 "(Service: Ec2, Status Code: 400, Request ID: 3f1c)")


def event(path: str, logical_id: str, status: str, seconds: float, reason: str = "",
          resource_type: str = "AWS::EC2::Subnet") -> StackEvent:
    return StackEvent(path, logical_id, resource_type, status, reason, T0 + timedelta(seconds=seconds), "")


# --- root cause selection ------------------------------------------------------------------------

def test_the_earliest_failed_resource_is_the_root_cause_not_the_stacks_echoing_it():
    found = events.root_cause([
        event("root", "app-dev", "CREATE_FAILED", 9, "The following resource(s) failed to create: [NetworkStack].",
              events.STACK_TYPE),
        event("root", "NetworkStack", "CREATE_FAILED", 8, f"Embedded stack {NETWORK_ID} was not successfully "
              "created: The following resource(s) failed to create: [PublicSubnetB].", events.STACK_TYPE),
        event("root › NetworkStack", "PublicSubnetA", "CREATE_FAILED", 5, "Resource creation cancelled"),
        event("root › NetworkStack", "PublicSubnetB", "CREATE_FAILED", 4, SUBNET_REASON),
        event("root › NetworkStack", "RouteB", "CREATE_FAILED", 6, "Route target is not valid",
              "AWS::EC2::Route"),
    ])
    assert (found.path, found.logical_id, found.reason) == ("root › NetworkStack", "PublicSubnetB", SUBNET_REASON)


@pytest.mark.parametrize("echo", [
    "Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled",
    f"Embedded stack {NETWORK_ID} was not successfully created: The following resource(s) failed to create: [X].",
    "The following resource(s) failed to update: [StorageStack].", "",
])
def test_echoes_and_empty_reasons_never_win_over_a_real_reason(echo):
    real = event("root › StorageStack", "ArtifactBucket", "UPDATE_FAILED", 3, "Bucket name taken",
                 "AWS::S3::Bucket")
    assert events.root_cause([event("root", "Echo", "UPDATE_FAILED", 1, echo), real]) == real


def test_a_stack_failure_with_its_own_reason_is_the_cause_when_no_resource_failed():
    # e.g. a nested stack refused before any resource was tried
    refused = event("root", "StorageStack", "CREATE_FAILED", 2, "Parameters: [Environment] must have values",
                    events.STACK_TYPE)
    found = events.root_cause([event("root", "app-dev", "CREATE_FAILED", 3, "", events.STACK_TYPE), refused])
    assert found == refused


def test_only_echoes_give_the_earliest_failure_and_no_failure_gives_none():
    # LocalStack 4.13.1: a failed nested stack's parent events have no reason at all
    first = event("root", "NetworkStack", "CREATE_FAILED", 1, "", events.STACK_TYPE)
    assert events.root_cause([event("root", "app-dev", "CREATE_FAILED", 2, "", events.STACK_TYPE), first]) == first
    assert events.root_cause([event("root", "Vpc", "CREATE_COMPLETE", 1)]) is None


# --- formatting ----------------------------------------------------------------------------------

def test_root_cause_line_names_path_logical_id_type_status_and_reason():
    cause = event("root › NetworkStack", "PublicSubnetB", "CREATE_FAILED", 4, SUBNET_REASON)
    assert events.describe_root_cause(cause) == (
        f"root cause: root › NetworkStack › PublicSubnetB (AWS::EC2::Subnet) CREATE_FAILED: {SUBNET_REASON}")


def test_root_cause_without_a_reason_says_so():
    cause = event("root", "NetworkStack", "CREATE_FAILED", 1, "", events.STACK_TYPE)
    assert events.describe_root_cause(cause) == (
        "root cause: root › NetworkStack (AWS::CloudFormation::Stack) CREATE_FAILED: "
        "(CloudFormation gave no reason)")


def test_event_lines_indent_by_depth_and_show_the_reason_of_failures_only():
    assert events.format_event(event("root", "NetworkStack", "CREATE_IN_PROGRESS", 0, "Resource creation Initiated",
                                     events.STACK_TYPE)) == (
        f"20:00:00 {'NetworkStack':<36} {'CREATE_IN_PROGRESS':<24} {'':>6}  AWS::CloudFormation::Stack")
    assert events.format_event(event("root › NetworkStack", "PublicSubnetB", "CREATE_FAILED", 4, "bad CIDR"),
                               elapsed=3.5) == (
        f"20:00:04   {'PublicSubnetB':<36} {'CREATE_FAILED':<24}   3.5s  AWS::EC2::Subnet  bad CIDR")


def test_event_lines_are_coloured_only_when_asked():
    failed = event("root", "Vpc", "CREATE_FAILED", 1, "boom")
    assert "\033[31m" in events.format_event(failed, colour=True)
    assert "\033[" not in events.format_event(failed, colour=False)


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert events.colour_wanted(Terminal())
    assert not events.colour_wanted(io.StringIO())  # a CI log or a pipe
    monkeypatch.setenv("NO_COLOR", "1")
    assert not events.colour_wanted(Terminal())


def test_a_finished_resource_shows_how_long_it_took():
    lines = []
    watcher = events.Watcher(cfn=None, root_stack_id=ROOT_ID, log=lines.append, colour=False)
    began = event("root", "Vpc", "CREATE_IN_PROGRESS", 0, "")
    done = event("root", "Vpc", "CREATE_COMPLETE", 2, "")
    assert watcher._elapsed(began) is None
    assert watcher._elapsed(done) == 2.0


@pytest.mark.parametrize("stack_id, name", [(ROOT_ID, "app-dev"), (NETWORK_ID, "app-dev-NetworkStack-1ABCDEF"),
                                            ("app-dev", "app-dev")])
def test_stack_name_is_read_from_the_stack_id(stack_id, name):
    assert events.stack_name(stack_id) == name


def test_failed_to_deploy_lists_the_roots_failed_resources_but_not_the_root_itself():
    failed = event("root", "NetworkStack", "CREATE_FAILED", 1, "", events.STACK_TYPE)
    found = events.failed_to_deploy([
        failed,
        StackEvent("root", "app-dev", events.STACK_TYPE, "CREATE_FAILED", "", T0, ROOT_ID),
        event("root › NetworkStack", "PublicSubnetB", "CREATE_FAILED", 0, "bad"),
        event("root", "OldBucket", "DELETE_FAILED", 2, "not empty", "AWS::S3::Bucket"),
    ], ROOT_ID)
    assert found == [failed]


# --- the watcher against stubbed CloudFormation -------------------------------------------------

def raw(stack_id: str, logical_id: str, status: str, seconds: float, *, reason: str = "", physical: str = "",
        resource_type: str = "AWS::EC2::Subnet") -> dict:
    """One DescribeStackEvents entry; ids are unique per stack, logical id, status and time."""
    entry = {
        "StackId": stack_id, "EventId": f"{events.stack_name(stack_id)}-{logical_id}-{status}-{seconds}",
        "StackName": events.stack_name(stack_id), "LogicalResourceId": logical_id, "ResourceType": resource_type,
        "Timestamp": T0 + timedelta(seconds=seconds), "ResourceStatus": status,
    }
    if reason:
        entry["ResourceStatusReason"] = reason
    if physical:
        entry["PhysicalResourceId"] = physical
    return entry


def newest_first(*entries: dict) -> dict:
    return {"StackEvents": sorted(entries, key=lambda entry: entry["Timestamp"], reverse=True)}


# An AWS create whose NetworkStack failed; the rollback deleted the nested stack, whose events are
# still there by its id (a name would find nothing: the stack is gone).
AWS_ROOT_EVENTS = newest_first(
    raw(ROOT_ID, "app-dev", "CREATE_IN_PROGRESS", 0, reason="User Initiated", physical=ROOT_ID,
        resource_type=events.STACK_TYPE),
    raw(ROOT_ID, "NetworkStack", "CREATE_IN_PROGRESS", 1, resource_type=events.STACK_TYPE),
    raw(ROOT_ID, "NetworkStack", "CREATE_IN_PROGRESS", 2, reason="Resource creation Initiated", physical=NETWORK_ID,
        resource_type=events.STACK_TYPE),
    raw(ROOT_ID, "NetworkStack", "CREATE_FAILED", 9, physical=NETWORK_ID, resource_type=events.STACK_TYPE,
        reason=f"Embedded stack {NETWORK_ID} was not successfully created: The following resource(s) failed "
               "to create: [PublicSubnetB]."),
    raw(ROOT_ID, "app-dev", "ROLLBACK_IN_PROGRESS", 10, physical=ROOT_ID, resource_type=events.STACK_TYPE,
        reason="The following resource(s) failed to create: [NetworkStack]. Rollback requested by user."),
    raw(ROOT_ID, "NetworkStack", "DELETE_COMPLETE", 14, physical=NETWORK_ID, resource_type=events.STACK_TYPE),
    raw(ROOT_ID, "app-dev", "ROLLBACK_COMPLETE", 15, physical=ROOT_ID, resource_type=events.STACK_TYPE),
)
AWS_NETWORK_EVENTS = newest_first(
    raw(NETWORK_ID, "app-dev-NetworkStack-1ABCDEF", "CREATE_IN_PROGRESS", 2, physical=NETWORK_ID,
        resource_type=events.STACK_TYPE),
    raw(NETWORK_ID, "Vpc", "CREATE_COMPLETE", 4, physical="vpc-1", resource_type="AWS::EC2::VPC"),
    raw(NETWORK_ID, "PublicSubnetB", "CREATE_FAILED", 6, reason=SUBNET_REASON),
    raw(NETWORK_ID, "PublicSubnetA", "CREATE_FAILED", 7, reason="Resource creation cancelled"),
    raw(NETWORK_ID, "app-dev-NetworkStack-1ABCDEF", "DELETE_COMPLETE", 13, physical=NETWORK_ID,
        resource_type=events.STACK_TYPE),
)


def test_a_nested_stack_deleted_by_rollback_is_walked_by_its_id(cfn):
    cfn.stubber.add_response("describe_stack_events", AWS_ROOT_EVENTS, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", AWS_NETWORK_EVENTS, {"StackName": NETWORK_ID})
    lines = []
    watcher = events.Watcher(cfn, ROOT_ID, log=lines.append)
    watcher.poll()
    cause = events.root_cause(watcher.events)
    assert events.describe_root_cause(cause) == (
        f"root cause: root › NetworkStack › PublicSubnetB (AWS::EC2::Subnet) CREATE_FAILED: {SUBNET_REASON}")
    assert watcher.stacks == {ROOT_ID: "root", NETWORK_ID: "root › NetworkStack"}
    # the nested stack's events about itself repeat its parent's and are left out; the rest is in time order
    assert [line.split()[1:3] for line in lines] == [
        ["app-dev", "CREATE_IN_PROGRESS"], ["NetworkStack", "CREATE_IN_PROGRESS"],
        ["NetworkStack", "CREATE_IN_PROGRESS"], ["Vpc", "CREATE_COMPLETE"], ["PublicSubnetB", "CREATE_FAILED"],
        ["PublicSubnetA", "CREATE_FAILED"], ["NetworkStack", "CREATE_FAILED"], ["app-dev", "ROLLBACK_IN_PROGRESS"],
        ["NetworkStack", "DELETE_COMPLETE"], ["app-dev", "ROLLBACK_COMPLETE"],
    ]


def test_poll_shows_each_event_once_and_prime_hides_the_past(cfn):
    old = raw(ROOT_ID, "app-dev", "CREATE_COMPLETE", 0, physical=ROOT_ID, resource_type=events.STACK_TYPE)
    new = raw(ROOT_ID, "app-dev", "UPDATE_IN_PROGRESS", 5, physical=ROOT_ID, resource_type=events.STACK_TYPE)
    cfn.stubber.add_response("describe_stack_events", newest_first(old), {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", newest_first(old, new), {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", newest_first(old, new), {"StackName": ROOT_ID})
    lines = []
    watcher = events.Watcher(cfn, ROOT_ID, log=lines.append)
    watcher.prime()
    assert [e.status for e in watcher.poll()] == ["UPDATE_IN_PROGRESS"]
    assert watcher.poll() == []
    assert len(lines) == 1


def test_prime_with_replay_leaves_the_current_operation_to_poll(cfn):
    history = newest_first(
        raw(ROOT_ID, "app-dev", "CREATE_COMPLETE", 0, physical=ROOT_ID, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "app-dev", "UPDATE_IN_PROGRESS", 5, physical=ROOT_ID, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "Vpc", "UPDATE_COMPLETE", 6, physical="vpc-1", resource_type="AWS::EC2::VPC"),
    )
    cfn.stubber.add_response("describe_stack_events", history, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", history, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", history, {"StackName": ROOT_ID})
    started = events.operation_start(cfn, ROOT_ID)
    assert started == T0 + timedelta(seconds=5)
    watcher = events.Watcher(cfn, ROOT_ID, log=lambda line: None)
    watcher.prime(replay_from=started)
    assert [(e.logical_id, e.status) for e in watcher.poll()] == [("app-dev", "UPDATE_IN_PROGRESS"),
                                                                  ("Vpc", "UPDATE_COMPLETE")]


# LocalStack 4.13.1: the parent's events never carry the failed nested stack's id; list_stacks holds a
# NetworkStack from an earlier attempt, the one that failed, and one of a stack made after it.
LOCAL_ROOT_ID = "arn:aws:cloudformation:us-east-1:000000000000:stack/app-local/aaaa"
LOCAL_NETWORK = {
    "earlier": "arn:aws:cloudformation:us-east-1:000000000000:stack/app-local-NetworkStack-0a0a0a0a/1111",
    "failed": "arn:aws:cloudformation:us-east-1:000000000000:stack/app-local-NetworkStack-3801ba76/2222",
    "later": "arn:aws:cloudformation:us-east-1:000000000000:stack/app-local-NetworkStack-9f9f9f9f/3333",
}
LOCAL_REASON = ("Resource provider operation failed: An error occurred (InvalidSubnet.Range) when calling the "
                "CreateSubnet operation: The CIDR '10.99.1.0/24' is invalid.")


def summary(stack_id: str, seconds: float, status: str) -> dict:
    return {"StackId": stack_id, "StackName": events.stack_name(stack_id), "StackStatus": status,
            "CreationTime": T0 + timedelta(seconds=seconds)}


def test_a_failed_nested_stack_the_parent_never_named_is_found_by_its_name(cfn):
    cfn.stubber.add_response("describe_stack_events", newest_first(
        raw(LOCAL_ROOT_ID, "app-local", "CREATE_IN_PROGRESS", 10, physical=LOCAL_ROOT_ID,
            resource_type=events.STACK_TYPE),
        raw(LOCAL_ROOT_ID, "NetworkStack", "CREATE_IN_PROGRESS", 11, resource_type=events.STACK_TYPE),
        raw(LOCAL_ROOT_ID, "NetworkStack", "CREATE_FAILED", 13, resource_type=events.STACK_TYPE),
        raw(LOCAL_ROOT_ID, "app-local", "CREATE_FAILED", 13.1, physical=LOCAL_ROOT_ID,
            resource_type=events.STACK_TYPE),
        raw(LOCAL_ROOT_ID, "app-local", "CREATE_COMPLETE", 13.2, physical=LOCAL_ROOT_ID,
            resource_type=events.STACK_TYPE),
    ), {"StackName": LOCAL_ROOT_ID})
    cfn.stubber.add_response("list_stacks", {"StackSummaries": [
        summary(LOCAL_NETWORK["later"], 60, "CREATE_COMPLETE"),
        summary(LOCAL_NETWORK["failed"], 11.02, "CREATE_FAILED"),
        summary(LOCAL_NETWORK["earlier"], 1, "DELETE_COMPLETE"),
        summary("arn:aws:cloudformation:us-east-1:000000000000:stack/app-local-StorageStack-5555/4444", 10.5,
                "CREATE_COMPLETE"),
    ]}, {})
    cfn.stubber.add_response("describe_stack_events", newest_first(
        raw(LOCAL_NETWORK["failed"], "PublicSubnetA", "CREATE_COMPLETE", 12, physical="subnet-1"),
        raw(LOCAL_NETWORK["failed"], "PublicSubnetB", "CREATE_FAILED", 12.5, reason=LOCAL_REASON),
    ), {"StackName": LOCAL_NETWORK["failed"]})
    watcher = events.Watcher(cfn, LOCAL_ROOT_ID, log=lambda line: None)
    watcher.poll()
    assert watcher.stacks[LOCAL_NETWORK["failed"]] == "root › NetworkStack"
    assert events.describe_root_cause(events.root_cause(watcher.events)) == (
        f"root cause: root › NetworkStack › PublicSubnetB (AWS::EC2::Subnet) CREATE_FAILED: {LOCAL_REASON}")


def test_wait_for_settle_polls_until_the_stack_leaves_in_progress(cfn):
    in_progress = {"Stacks": [{"StackName": "app-dev", "StackId": ROOT_ID, "StackStatus": "UPDATE_IN_PROGRESS",
                               "CreationTime": T0}]}
    done = {"Stacks": [{"StackName": "app-dev", "StackId": ROOT_ID, "StackStatus": "UPDATE_COMPLETE",
                        "CreationTime": T0}]}
    for reply in (in_progress, in_progress, done):
        cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": ROOT_ID})
        cfn.stubber.add_response("describe_stacks", reply, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": ROOT_ID})
    slept = []
    final = events.wait_for_settle(cfn, events.Watcher(cfn, ROOT_ID), 1.0, 1.2, 60, sleep=slept.append)
    assert final["StackStatus"] == "UPDATE_COMPLETE"
    assert slept == [1.2, 1.2]  # nothing happened: backed off to the cap


def test_wait_for_settle_gives_up_at_the_deadline(cfn):
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stacks", {"Stacks": [{"StackName": "app-dev", "StackId": ROOT_ID,
                                                             "StackStatus": "UPDATE_IN_PROGRESS",
                                                             "CreationTime": T0}]}, {"StackName": ROOT_ID})
    with pytest.raises(TimeoutError, match=r"^app-dev is still UPDATE_IN_PROGRESS after -1 s$"):
        events.wait_for_settle(cfn, events.Watcher(cfn, ROOT_ID), 1.0, 1.0, -1, sleep=lambda s: None)


def stacks_reply(status: str) -> dict:
    return {"Stacks": [{"StackName": "app-dev", "StackId": ROOT_ID, "StackStatus": status, "CreationTime": T0}]}


def test_the_status_before_an_operation_is_not_taken_for_its_end(cfn):
    # ExecuteChangeSet returns before the stack says UPDATE_IN_PROGRESS: the old UPDATE_COMPLETE is not the end
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stacks", stacks_reply("UPDATE_COMPLETE"), {"StackName": ROOT_ID})
    updated = newest_first(
        raw(ROOT_ID, "app-dev", "UPDATE_IN_PROGRESS", 1, physical=ROOT_ID, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "app-dev", "UPDATE_COMPLETE", 2, physical=ROOT_ID, resource_type=events.STACK_TYPE))
    cfn.stubber.add_response("describe_stack_events", updated, {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stacks", stacks_reply("UPDATE_COMPLETE"), {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", updated, {"StackName": ROOT_ID})
    watcher = events.Watcher(cfn, ROOT_ID, log=lambda line: None)
    final = events.wait_for_settle(cfn, watcher, 0, 0, 60, sleep=lambda s: None, leaving="UPDATE_COMPLETE")
    assert final["StackStatus"] == "UPDATE_COMPLETE"
    assert [e.status for e in watcher.events] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]


def test_a_final_status_while_resources_are_still_at_work_is_not_the_end(cfn):
    # LocalStack 4.13.1: DELETE_FAILED as soon as one nested stack fails to delete, DELETE_COMPLETE a second later
    first = newest_first(
        raw(ROOT_ID, "app-dev", "DELETE_IN_PROGRESS", 1, physical=ROOT_ID, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "NetworkStack", "DELETE_FAILED", 2, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "app-dev", "DELETE_FAILED", 2.1, physical=ROOT_ID, resource_type=events.STACK_TYPE),
        raw(ROOT_ID, "IamStack", "DELETE_IN_PROGRESS", 2.2, resource_type=events.STACK_TYPE))
    done = newest_first(*first["StackEvents"],
                        raw(ROOT_ID, "IamStack", "DELETE_COMPLETE", 3, resource_type=events.STACK_TYPE),
                        raw(ROOT_ID, "app-dev", "DELETE_COMPLETE", 3.1, physical=ROOT_ID,
                            resource_type=events.STACK_TYPE))
    cfn.stubber.add_response("describe_stack_events", first, {"StackName": ROOT_ID})
    cfn.stubber.add_response("list_stacks", {"StackSummaries": []}, {})  # NetworkStack's id, looked for once
    cfn.stubber.add_response("describe_stacks", stacks_reply("DELETE_FAILED"), {"StackName": ROOT_ID})
    cfn.stubber.add_response("describe_stack_events", first, {"StackName": ROOT_ID})
    for reply, status in ((first, "DELETE_FAILED"), (done, "DELETE_COMPLETE")):
        cfn.stubber.add_response("describe_stack_events", reply, {"StackName": ROOT_ID})
        cfn.stubber.add_response("describe_stacks", stacks_reply(status), {"StackName": ROOT_ID})
        cfn.stubber.add_response("describe_stack_events", reply, {"StackName": ROOT_ID})
    watcher = events.Watcher(cfn, ROOT_ID, log=lambda line: None)
    final = events.wait_for_settle(cfn, watcher, 0, 0, 60, sleep=lambda s: None)
    assert final["StackStatus"] == "DELETE_COMPLETE"
    assert watcher.busy() == []
