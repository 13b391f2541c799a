"""Change sets: create one, describe it (nested ones too), guard the data, execute it.

The data guard reads what CloudFormation reports: ``Replacement`` and the ``Details`` whose target
``RequiresRecreation``, in the root change set and in the nested change sets ``IncludeNestedStacks``
makes. Where a nested stack's change comes without a nested change set — LocalStack 4.13.1 reports
``IncludeNestedStacks: false`` and only ``Modify <NestedStack>``, ``Replacement: False``, no details —
the nested changes are worked out from the stack's deployed template and the new one (see
``undescribed_nested_changes``), so the guard still sees a bucket being replaced or removed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from deployer.errors import DeployFailed
from deployer.events import SEPARATOR, STACK_TYPE
from deployer.manifest import Build

CAPABILITIES = ["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
# Resource types that hold data: replacing or removing one loses it.
STATEFUL_TYPES = {"AWS::S3::Bucket", "AWS::Logs::LogGroup", "AWS::DynamoDB::Table", "AWS::RDS::DBInstance"}
# Their properties whose change replaces the resource ("Update requires: Replacement" in the
# CloudFormation resource reference); used only where no change set describes a nested change.
REPLACING_PROPERTIES = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::RDS::DBInstance": ("DBInstanceIdentifier", "DBName", "KmsKeyId", "StorageEncrypted"),
}
RETAINING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")
EMPTY_REASONS = ("didn't contain changes", "No updates are to be performed", "no changes")
FROM_TEMPLATES = "from the templates"


@dataclass(frozen=True)
class Change:
    path: str  # "root › StorageStack"
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str  # True | False | Conditional | "" (not known)
    forced_by: tuple[str, ...] = ()  # properties whose change requires replacement
    physical_id: str = ""
    nested_change_set: str = ""  # a nested stack's own change set, if CloudFormation made one
    retained: bool = False  # the deployed resource's DeletionPolicy keeps it (known for removals)
    source: str = "the change set"  # or FROM_TEMPLATES

    def describe(self) -> str:
        replace = {"True": "  (REPLACEMENT)", "Conditional": "  (may replace)"}.get(self.replacement, "")
        return f"  {self.action:<7} {self.path}{SEPARATOR}{self.logical_id} ({self.resource_type}){replace}"


@dataclass(frozen=True)
class ChangeSet:
    id: str
    stack_id: str
    changes: tuple[Change, ...]
    empty: bool


def create(cfn: Any, stack_name: str, change_set_type: str, template: dict[str, str],
           parameters: dict[str, str], tags: dict[str, str], interval: float,
           max_interval: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> ChangeSet:
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
        delay = min(delay * 1.5, max_interval)
    changes = tuple(describe(cfn, change_set_id))
    return ChangeSet(change_set_id, stack_id, changes, empty=not changes)


def describe(cfn: Any, change_set_id: str, path: str = "root") -> list[Change]:
    """Every change of a change set and, depth first, of its nested change sets."""
    found = []
    for page in _pages(cfn, change_set_id):
        for entry in page.get("Changes", []):
            rc = entry.get("ResourceChange", {})
            forced = tuple(sorted({
                detail["Target"].get("Name", "")
                for detail in rc.get("Details", [])
                if detail.get("Target", {}).get("RequiresRecreation") in ("Always", "Conditionally")
            } - {""}))
            nested = rc.get("ChangeSetId") or ""
            if nested == change_set_id or rc.get("ResourceType") != STACK_TYPE:
                nested = ""
            found.append(Change(path, rc.get("Action", ""), rc.get("LogicalResourceId", ""),
                                rc.get("ResourceType", ""), rc.get("Replacement", "") or "", forced,
                                physical_id=rc.get("PhysicalResourceId") or "", nested_change_set=nested))
            if nested:
                found.extend(describe(cfn, nested, f"{path}{SEPARATOR}{rc.get('LogicalResourceId')}"))
    return found


def _pages(cfn: Any, change_set_id: str) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        options = {"NextToken": token} if token else {}
        page = cfn.describe_change_set(ChangeSetName=change_set_id, **options)
        yield page
        token = page.get("NextToken")
        if not token:
            return


def undescribed_nested_changes(cfn: Any, build: Build, changes: tuple[Change, ...] | list[Change],
                               parameters: dict[str, str]) -> list[Change]:
    """The changes inside the root's nested stacks that no change set describes, from the templates.

    For each nested stack the root modifies without a nested change set, its deployed template (by
    stack id) is compared with the new one in the build; a nested stack the root removes takes all its
    resources with it. ``parameters`` are the root's new parameter values: a child parameter that
    passes one on and changes can change a replacing property that reads it.
    """
    found: list[Change] = []
    for change in changes:
        if (change.path != "root" or change.resource_type != STACK_TYPE or change.nested_change_set
                or not change.physical_id.startswith("arn:")):
            continue
        path = f"root{SEPARATOR}{change.logical_id}"
        if change.action == "Remove":
            deployed = deployed_template(cfn, change.physical_id)
            found.extend(_template_changes(path, deployed, {}, set()))
        elif change.action == "Modify" and change.logical_id in build.children:
            deployed = deployed_template(cfn, change.physical_id)
            passed = build.root["Resources"].get(change.logical_id, {}).get("Properties", {}).get("Parameters", {})
            changed = _changed_parameters(cfn, change.physical_id, passed, parameters)
            found.extend(_template_changes(path, deployed, build.child_template(change.logical_id), changed))
    return found


def deployed_template(cfn: Any, stack_id: str) -> dict[str, Any]:
    """The template the stack was last deployed with, as submitted (ValueError if it is not JSON)."""
    body = cfn.get_template(StackName=stack_id, TemplateStage="Original")["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else dict(body)  # boto3 parses JSON bodies itself


def _changed_parameters(cfn: Any, stack_id: str, passed: dict[str, Any], parameters: dict[str, str]) -> set[str]:
    """The child's parameters whose value changes: those the root passes on with a plain ``Ref``."""
    current = {p["ParameterKey"]: p.get("ParameterValue")
               for p in cfn.describe_stacks(StackName=stack_id)["Stacks"][0].get("Parameters", [])}
    changed = set()
    for name, value in passed.items():
        source = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
        if source in parameters and current.get(name) != parameters[source]:
            changed.add(name)
    return changed


def _template_changes(path: str, before: dict[str, Any], after: dict[str, Any], changed: set[str]) -> list[Change]:
    old, new = before.get("Resources", {}), after.get("Resources", {})
    found = []
    for name in sorted(set(old) | set(new)):
        was, will = old.get(name), new.get(name)
        if was is None:
            found.append(Change(path, "Add", name, will.get("Type", ""), "", source=FROM_TEMPLATES))
        elif will is None:
            found.append(Change(path, "Remove", name, was.get("Type", ""), "", source=FROM_TEMPLATES,
                                retained=was.get("DeletionPolicy") in RETAINING_POLICIES))
        elif was.get("Type") != will.get("Type"):
            found.append(Change(path, "Modify", name, will.get("Type", ""), "True", ("Type",), source=FROM_TEMPLATES))
        else:
            replacement, forced = _replacement(will.get("Type", ""), was.get("Properties", {}),
                                               will.get("Properties", {}), changed)
            if was != will or replacement:
                found.append(Change(path, "Modify", name, will.get("Type", ""), replacement, forced,
                                    source=FROM_TEMPLATES))
    return found


def _replacement(resource_type: str, was: dict[str, Any], will: dict[str, Any],
                 changed: set[str]) -> tuple[str, tuple[str, ...]]:
    """("True" | "Conditional" | "", the replacing properties that change) for one resource."""
    certain, possible = [], []
    for prop in REPLACING_PROPERTIES.get(resource_type, ()):
        before, after = was.get(prop), will.get(prop)
        if before != after:
            (certain if _certainly_differ(before, after) else possible).append(prop)
        elif after is not None and _reads(after, changed):
            possible.append(prop)
    if certain:
        return "True", tuple(sorted(certain + possible))
    if possible:
        return "Conditional", tuple(sorted(possible))
    return "", ()


_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def _certainly_differ(before: Any, after: Any) -> bool:
    """Two property values that cannot resolve to the same thing: different literals, or two
    ``Fn::Sub`` strings with the same variables in the same order around different text."""
    if before is None or after is None:
        return True
    if isinstance(before, (str, int, float, bool)) and isinstance(after, (str, int, float, bool)):
        return before != after
    subs = [_sub_string(value) for value in (before, after)]
    if None not in subs:
        return (_VARIABLE.findall(subs[0]) == _VARIABLE.findall(subs[1])
                and _VARIABLE.sub("\0", subs[0]) != _VARIABLE.sub("\0", subs[1]))
    return False


def _sub_string(value: Any) -> str | None:
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    return None


def _reads(value: Any, names: set[str]) -> bool:
    text = json.dumps(value)
    return any(f'{{"Ref": "{name}"}}' in text or f"${{{name}}}" in text for name in names)


def data_at_risk(build: Build, changes: tuple[Change, ...] | list[Change]) -> list[str]:
    """Changes that would replace or remove a stateful resource, described for a human."""
    retained = _retained_resources(build)
    risky = []
    for change in changes:
        child = change.path.split(SEPARATOR)[-1]
        stateful = (change.resource_type in STATEFUL_TYPES or change.retained
                    or (child, change.logical_id) in retained)
        if not stateful:
            continue
        what = f"{change.path}{SEPARATOR}{change.logical_id} ({change.resource_type})"
        if change.action == "Remove":
            risky.append(f"{what} would be REMOVED")
        elif change.action == "Modify" and change.replacement in ("True", "Conditional"):
            props = ", ".join(change.forced_by) or "a property"
            verb = "REPLACED" if change.replacement == "True" else "possibly REPLACED"
            risky.append(f"{what} would be {verb} (changing {props} forces a new resource)")
    return risky


def _retained_resources(build: Build) -> set[tuple[str, str]]:
    """(nested stack logical id, resource logical id) of every resource the new templates retain."""
    retained = {("root", name) for name, resource in build.root.get("Resources", {}).items()
                if resource.get("DeletionPolicy") in RETAINING_POLICIES}
    for logical_id in build.children:
        for name, resource in build.child_template(logical_id).get("Resources", {}).items():
            if resource.get("DeletionPolicy") in RETAINING_POLICIES:
                retained.add((logical_id, name))
    return retained


def delete_quietly(cfn: Any, change_set_id: str) -> None:
    try:
        cfn.delete_change_set(ChangeSetName=change_set_id)
    except Exception:  # noqa: BLE001 - cleanup of an empty change set is best effort
        pass
