"""Change sets: create one, describe it (nested ones too), guard the data, execute it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from deployer.errors import DeployFailed
from deployer.manifest import Build

CAPABILITIES = ["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
# Resource types that hold data: replacing or removing one loses it.
STATEFUL_TYPES = {"AWS::S3::Bucket", "AWS::Logs::LogGroup", "AWS::DynamoDB::Table", "AWS::RDS::DBInstance"}
EMPTY_REASONS = ("didn't contain changes", "No updates are to be performed", "no changes")


@dataclass(frozen=True)
class Change:
    path: str  # "root › StorageStack"
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str  # True | False | Conditional | ""
    forced_by: tuple[str, ...]  # properties whose change requires replacement

    def describe(self) -> str:
        replace = {"True": "  (REPLACEMENT)", "Conditional": "  (may replace)"}.get(self.replacement, "")
        return f"  {self.action:<7} {self.path} › {self.logical_id} ({self.resource_type}){replace}"


@dataclass(frozen=True)
class ChangeSet:
    id: str
    stack_id: str
    changes: tuple[Change, ...]
    empty: bool


def create(cfn: Any, stack_name: str, change_set_type: str, template: dict[str, str],
           parameters: dict[str, str], tags: dict[str, str], interval: float,
           sleep: Callable[[float], None] = time.sleep) -> ChangeSet:
    """Create a change set and wait until it is ready (or found empty)."""
    name = f"deploy-{int(time.time() * 1000)}"
    reply = cfn.create_change_set(
        StackName=stack_name,
        ChangeSetName=name,
        ChangeSetType=change_set_type,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        Capabilities=CAPABILITIES,
        Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        IncludeNestedStacks=True,
        **template,
    )
    change_set_id, stack_id = reply["Id"], reply["StackId"]
    delay = interval
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id)
        status, reason = described["Status"], described.get("StatusReason") or ""
        if status == "CREATE_COMPLETE":
            break
        if status == "FAILED":
            if any(empty in reason for empty in EMPTY_REASONS):
                return ChangeSet(change_set_id, stack_id, (), empty=True)
            raise DeployFailed(f"change set failed: {reason}")
        sleep(delay)
        delay = min(delay * 1.5, 5.0)
    changes = tuple(_changes(cfn, change_set_id, "root"))
    return ChangeSet(change_set_id, stack_id, changes, empty=not changes)


def _changes(cfn: Any, change_set_id: str, path: str) -> list[Change]:
    found = []
    for page in _pages(cfn, change_set_id):
        for entry in page.get("Changes", []):
            rc = entry.get("ResourceChange", {})
            forced = tuple(sorted({
                detail["Target"].get("Name", "")
                for detail in rc.get("Details", [])
                if detail.get("Target", {}).get("RequiresRecreation") in ("Always", "Conditionally")
            } - {""}))
            found.append(Change(path, rc.get("Action", ""), rc.get("LogicalResourceId", ""),
                                rc.get("ResourceType", ""), rc.get("Replacement", "") or "", forced))
            nested = rc.get("ChangeSetId")
            if nested and rc.get("ResourceType") == "AWS::CloudFormation::Stack" and nested != change_set_id:
                found.extend(_changes(cfn, nested, f"{path} › {rc.get('LogicalResourceId')}"))
    return found


def _pages(cfn: Any, change_set_id: str):
    token = None
    while True:
        options = {"NextToken": token} if token else {}
        page = cfn.describe_change_set(ChangeSetName=change_set_id, **options)
        yield page
        token = page.get("NextToken")
        if not token:
            return


def data_at_risk(build: Build, changes: tuple[Change, ...]) -> list[str]:
    """Changes that would replace or remove a stateful resource, described for a human."""
    retained = _retained_resources(build)
    risky = []
    for change in changes:
        child = change.path.split(" › ")[-1]
        stateful = change.resource_type in STATEFUL_TYPES or (child, change.logical_id) in retained
        if not stateful:
            continue
        if change.action == "Remove":
            risky.append(f"{change.path} › {change.logical_id} ({change.resource_type}) would be REMOVED")
        elif change.action == "Modify" and change.replacement in ("True", "Conditional"):
            props = ", ".join(change.forced_by) or "a property"
            verb = "REPLACED" if change.replacement == "True" else "possibly REPLACED"
            risky.append(f"{change.path} › {change.logical_id} ({change.resource_type}) would be {verb} "
                         f"(changing {props} forces a new resource)")
    return risky


def _retained_resources(build: Build) -> set[tuple[str, str]]:
    retained = set()
    for logical_id in build.children:
        for name, resource in build.child_template(logical_id).get("Resources", {}).items():
            if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot"):
                retained.add((logical_id, name))
    return retained


def delete_quietly(cfn: Any, change_set_id: str) -> None:
    try:
        cfn.delete_change_set(ChangeSetName=change_set_id)
    except Exception:  # noqa: BLE001 - cleanup of an empty change set is best effort
        pass
