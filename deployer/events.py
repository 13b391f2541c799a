"""Watch a stack and its nested stacks, and say what went wrong first.

CloudFormation reports a nested failure at the parent as "Embedded stack ... was not
successfully created", so the watcher follows every nested stack by its id — also after rollback
deleted it (CloudFormation keeps a deleted stack's events, readable by id only) — and the root
cause is the earliest failure of a real resource anywhere in the tree.

LocalStack 4.13.1 is worse: a nested stack that fails never appears with its id in the parent's
events (the parent's CREATE_FAILED event has no PhysicalResourceId and no reason), so the watcher
looks such a stack up by the name CloudFormation gives nested stacks, ``PARENT-LOGICALID-SUFFIX``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import ClientError

STACK_TYPE = "AWS::CloudFormation::Stack"
# Failures that only echo another resource's failure.
ECHO_REASONS = (
    "Resource creation cancelled",
    "Resource update cancelled",
    "Resource deletion cancelled",
    "Embedded stack",
    "The following resource(s) failed",
)
# The root stack's own events that begin an operation (a rollback continues the operation before it).
OPERATION_STARTS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS"}
# A resource that failed to come up: the operation failed, whatever the stack's status says.
FAILED_TO_DEPLOY = {"CREATE_FAILED", "UPDATE_FAILED"}
SEPARATOR = " › "
# How long a stack that reports a final status may still have resources at work. LocalStack 4.13.1
# reports DELETE_FAILED (status and event) the moment one nested stack fails to delete, then goes on
# deleting the others and ends DELETE_COMPLETE about a second later (measured); on AWS a final status
# means every resource has settled, so this never waits there.
SETTLE_GRACE_S = 30.0


@dataclass(frozen=True)
class StackEvent:
    path: str  # "root › StorageStack"
    logical_id: str
    resource_type: str
    status: str
    reason: str
    timestamp: datetime
    physical_id: str

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    @property
    def echoes_another_failure(self) -> bool:
        return not self.reason or any(self.reason.startswith(echo) for echo in ECHO_REASONS)


@dataclass
class Watcher:
    """Polls events of the root stack and every nested stack it discovers."""

    cfn: Any
    root_stack_id: str
    log: Callable[[str], None] = print
    stacks: dict[str, str] = field(default_factory=dict)  # stack id → path
    seen: set[str] = field(default_factory=set)
    events: list[StackEvent] = field(default_factory=list)
    colour: bool = field(default_factory=lambda: colour_wanted(sys.stdout))
    started: dict[tuple[str, str], datetime] = field(default_factory=dict)  # resource → its *_IN_PROGRESS

    def __post_init__(self) -> None:
        self.stacks.setdefault(self.root_stack_id, "root")

    def prime(self, replay_from: datetime | None = None) -> None:
        """Mark the events that already exist as seen, so that poll() shows only what happens next;
        with ``replay_from``, events from that time on are left for poll() to show and record."""
        pending = list(self.stacks)
        while pending:
            stack_id = pending.pop()
            for raw in self._new_raw_events(stack_id):
                if replay_from is not None and raw["Timestamp"] >= replay_from:
                    continue
                self.seen.add(raw["EventId"])
                new_child = self._discover(raw, self.stacks[stack_id])
                if new_child:
                    pending.append(new_child)

    def poll(self) -> list[StackEvent]:
        """Fetch, record and print the events that appeared since the last poll, oldest first."""
        fresh: list[StackEvent] = []
        pending = list(self.stacks)
        while pending:
            stack_id = pending.pop()
            path = self.stacks[stack_id]
            for raw in self._new_raw_events(stack_id):
                self.seen.add(raw["EventId"])
                # A nested stack's event about itself repeats its parent's event for it.
                if stack_id != self.root_stack_id and raw.get("PhysicalResourceId") == stack_id:
                    continue
                fresh.append(_to_event(raw, path))
                new_child = self._discover(raw, path) or self._find_failed_child(raw, stack_id, path)
                if new_child:
                    pending.append(new_child)
        fresh.sort(key=lambda event: event.timestamp)
        for event in fresh:
            self.log(format_event(event, self._elapsed(event), self.colour))
        self.events.extend(fresh)
        return fresh

    def _elapsed(self, event: StackEvent) -> float | None:
        """Seconds since this resource's operation began, once it has finished (or failed)."""
        key = (event.path, event.logical_id)
        if event.status.endswith("_IN_PROGRESS"):
            self.started.setdefault(key, event.timestamp)
            return None
        began = self.started.pop(key, None)
        return (event.timestamp - began).total_seconds() if began else None

    def busy(self) -> list[StackEvent]:
        """The resources whose latest event seen is *_IN_PROGRESS (a stack's events about itself aside)."""
        latest: dict[tuple[str, str], StackEvent] = {}
        for event in self.events:
            if event.physical_id != self.root_stack_id:  # nested stacks' own events are never recorded
                latest[(event.path, event.logical_id)] = event
        return [e for e in latest.values() if e.status.endswith("_IN_PROGRESS")]

    def _new_raw_events(self, stack_id: str) -> list[dict[str, Any]]:
        """Events newer than any seen, newest first as the API returns them."""
        new = []
        for page in self.cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
            for raw in page["StackEvents"]:
                if raw["EventId"] in self.seen:
                    return new
                new.append(raw)
        return new

    def _discover(self, raw: dict[str, Any], path: str) -> str | None:
        physical = raw.get("PhysicalResourceId") or ""
        if (raw.get("ResourceType") == STACK_TYPE and physical.startswith("arn:")
                and physical != raw.get("StackId") and physical not in self.stacks):
            self.stacks[physical] = f"{path}{SEPARATOR}{raw['LogicalResourceId']}"
            return physical
        return None

    def _find_failed_child(self, raw: dict[str, Any], parent_id: str, path: str) -> str | None:
        """The id of a nested stack that failed without its parent's event naming it (LocalStack 4.13.1).

        Only the newest stack named ``PARENT-LOGICALID-…`` created before the failure qualifies (the
        emulator stamps both with one clock), so neither a stack from an earlier attempt nor one made later
        under the same name is taken for it; once a nested stack is known, it is not looked for again.
        """
        physical = raw.get("PhysicalResourceId") or ""
        if raw.get("ResourceType") != STACK_TYPE or not raw.get("ResourceStatus", "").endswith("_FAILED"):
            return None
        path = f"{path}{SEPARATOR}{raw['LogicalResourceId']}"
        if (physical.startswith("arn:") or raw["LogicalResourceId"] == stack_name(parent_id)
                or path in self.stacks.values()):
            return None
        prefix = f"{stack_name(parent_id)}-{raw['LogicalResourceId']}-"
        latest = raw["Timestamp"]
        candidates = [
            summary
            for page in self.cfn.get_paginator("list_stacks").paginate()
            for summary in page["StackSummaries"]
            if summary["StackName"].startswith(prefix) and summary["StackId"] not in self.stacks
            and summary.get("ParentId", parent_id) == parent_id and summary["CreationTime"] <= latest
        ]
        if not candidates:
            return None
        child = max(candidates, key=lambda summary: summary["CreationTime"])["StackId"]
        self.stacks[child] = path
        return child


def stack_name(stack_id: str) -> str:
    """``arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID`` → NAME (a name stays a name)."""
    return stack_id.split("/")[1] if stack_id.startswith("arn:") and stack_id.count("/") >= 2 else stack_id


def _to_event(raw: dict[str, Any], path: str) -> StackEvent:
    return StackEvent(
        path=path,
        logical_id=raw["LogicalResourceId"],
        resource_type=raw.get("ResourceType", ""),
        status=raw.get("ResourceStatus", ""),
        reason=raw.get("ResourceStatusReason") or "",
        timestamp=raw["Timestamp"],
        physical_id=raw.get("PhysicalResourceId") or "",
    )


# ANSI colours for a terminal only: CI logs get plain lines.
STATUS_COLOURS = (("_FAILED", "\033[31m"), ("ROLLBACK", "\033[33m"), ("_COMPLETE", "\033[32m"))
RESET = "\033[0m"
# Wide enough for the longest logical id here (PrivateSubnetARouteTableAssociation, 35).
LOGICAL_ID_WIDTH = 36


def colour_wanted(stream: Any) -> bool:
    """Colour on an interactive terminal, unless NO_COLOR (no-color.org) or TERM=dumb says otherwise."""
    return (hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")


def format_event(event: StackEvent, elapsed: float | None = None, colour: bool = False) -> str:
    """One line per resource status: clock, nesting indent, resource, status, time taken, type, reason."""
    indent = "  " * event.path.count(SEPARATOR)
    clock = event.timestamp.strftime("%H:%M:%S")
    status = f"{event.status:<24}"
    if colour:
        code = next((code for marker, code in STATUS_COLOURS if marker in event.status), "")
        status = f"{code}{status}{RESET}" if code else status
    took = f"{elapsed:5.1f}s" if elapsed is not None else ""
    reason = f"  {event.reason}" if event.reason and event.failed else ""
    return f"{clock} {indent}{event.logical_id:<{LOGICAL_ID_WIDTH}} {status} {took:>6}  {event.resource_type}{reason}"


def root_cause(events: list[StackEvent]) -> StackEvent | None:
    """The earliest failure of a real resource; failing that, the earliest failure with a reason."""
    failures = sorted((e for e in events if e.failed), key=lambda e: e.timestamp)
    for candidates in (
        [e for e in failures if e.resource_type != STACK_TYPE and not e.echoes_another_failure],
        [e for e in failures if not e.echoes_another_failure],
        failures,
    ):
        if candidates:
            return candidates[0]
    return None


def describe_root_cause(event: StackEvent) -> str:
    where = f"{event.path}{SEPARATOR}{event.logical_id}"
    reason = event.reason or "(CloudFormation gave no reason)"
    return f"root cause: {where} ({event.resource_type}) {event.status}: {reason}"


def failed_to_deploy(events: list[StackEvent], root_stack_id: str) -> list[StackEvent]:
    """The root stack's resources that failed to create or update (not the stack's own events).

    On AWS a stack that ends CREATE_COMPLETE or UPDATE_COMPLETE has none; LocalStack 4.13.1 ends a
    create CREATE_COMPLETE, without rolling back, when a nested stack failed.
    """
    return [e for e in events if e.path == "root" and e.status in FAILED_TO_DEPLOY
            and e.physical_id != root_stack_id and e.logical_id != stack_name(root_stack_id)]


def operation_start(cfn: Any, stack_id: str) -> datetime | None:
    """When the stack's latest operation (create, update, delete, import) began; None if never."""
    name = stack_name(stack_id)
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        for raw in page["StackEvents"]:
            own = raw.get("PhysicalResourceId") == stack_id or raw.get("LogicalResourceId") == name
            if own and raw.get("ResourceType") == STACK_TYPE and raw.get("ResourceStatus") in OPERATION_STARTS:
                return raw["Timestamp"]
    return None


def wait_for_settle(cfn: Any, watcher: Watcher, interval: float, max_interval: float, deadline_s: float,
                    sleep: Callable[[float], None] = time.sleep, leaving: str | None = None) -> dict[str, Any]:
    """Poll until the root stack leaves *_IN_PROGRESS; back off while nothing happens.

    ``leaving``: the status the stack had when an operation was just started on it. Until the operation's
    first event shows up, that status is the one before the operation, not its end (REVIEW_IN_PROGRESS
    before a create, UPDATE_COMPLETE before an update): CloudFormation starts operations asynchronously.
    Raises TimeoutError after ``deadline_s`` seconds; the stack operation itself goes on.
    """
    started = time.monotonic()
    final_since = None
    delay = interval
    while True:
        got_events = watcher.poll()
        stack = describe_stack(cfn, watcher.root_stack_id)
        not_begun = stack is not None and stack["StackStatus"] == leaving and not watcher.events
        if not not_begun and (stack is None or not stack["StackStatus"].endswith("_IN_PROGRESS")):
            got_events = bool(watcher.poll()) or got_events  # the last events may land with the status change
            final_since = final_since if final_since is not None else time.monotonic()
            if not watcher.busy() or time.monotonic() - final_since > SETTLE_GRACE_S:
                return stack or {"StackStatus": "DELETE_COMPLETE", "StackId": watcher.root_stack_id}
        else:
            final_since = None
        if time.monotonic() - started > deadline_s:
            raise TimeoutError(f"{stack_name(watcher.root_stack_id)} is still {(stack or {}).get('StackStatus')} "
                               f"after {deadline_s:.0f} s")
        delay = interval if got_events else min(delay * 1.5, max_interval)
        sleep(delay)


def describe_stack(cfn: Any, name_or_id: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_stacks(StackName=name_or_id)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise
