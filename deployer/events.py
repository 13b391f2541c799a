"""Watch a stack and its nested stacks, and say what went wrong first.

CloudFormation reports a nested failure at the parent as "Embedded stack ... was not
successfully created" (and LocalStack leaves the parent's reason empty), so the watcher follows
every nested stack by its id — also after rollback deleted it — and the root cause is the
earliest failure of a real resource anywhere in the tree.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

STACK_TYPE = "AWS::CloudFormation::Stack"
# Failures that only echo another resource's failure.
ECHO_REASONS = (
    "Resource creation cancelled",
    "Resource update cancelled",
    "Embedded stack",
    "The following resource(s) failed",
    "Resource deletion cancelled",
)
SEPARATOR = " › "


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

    def __post_init__(self) -> None:
        self.stacks.setdefault(self.root_stack_id, "root")

    def prime(self) -> None:
        """Mark every event that already exists as seen: only what happens next is shown."""
        pending = list(self.stacks)
        while pending:
            stack_id = pending.pop()
            for raw in self._new_raw_events(stack_id):
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
                new_child = self._discover(raw, path)
                if new_child:
                    pending.append(new_child)
        fresh.sort(key=lambda event: event.timestamp)
        for event in fresh:
            self.log(format_event(event))
        self.events.extend(fresh)
        return fresh

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


def format_event(event: StackEvent) -> str:
    depth = event.path.count(SEPARATOR)
    indent = "  " * depth
    clock = event.timestamp.strftime("%H:%M:%S")
    reason = f"  {event.reason}" if event.reason and event.failed else ""
    return f"{clock} {indent}{event.logical_id:<34} {event.status:<24} {event.resource_type}{reason}"


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


def wait_for_settle(cfn: Any, watcher: Watcher, interval: float, max_interval: float, deadline_s: float,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll until the root stack leaves *_IN_PROGRESS; back off while nothing happens."""
    started = time.monotonic()
    delay = interval
    while True:
        got_events = watcher.poll()
        stack = describe_stack(cfn, watcher.root_stack_id)
        if stack is None or not stack["StackStatus"].endswith("_IN_PROGRESS"):
            watcher.poll()  # the last events may land with the status change
            return stack or {"StackStatus": "DELETE_COMPLETE"}
        if time.monotonic() - started > deadline_s:
            raise TimeoutError(f"stack still {stack['StackStatus']} after {deadline_s:.0f} s")
        delay = interval if got_events else min(delay * 1.5, max_interval)
        sleep(delay)


def describe_stack(cfn: Any, name_or_id: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name_or_id)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise


def is_tty() -> bool:
    return sys.stdout.isatty()
