"""A Mermaid architecture diagram of one environment, derived from its built JSON templates.

It reads ``build/ENV/*.json`` (never troposphere objects), so the picture cannot drift from what
gets deployed. Each nested stack is a ``subgraph``, each resource a node (``Vpc<br/>EC2::VPC``).
Edges point from what is referenced to what refers to it:

- inside a stack, every ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` ``${...}`` between two resources;
- between stacks (thick, labelled with the parameter), the root's wiring: a child parameter fed
  with ``Fn::GetAtt Other.Outputs.X`` links the resources that output ``X``'s value names to the
  resources that use the parameter.

Anything that exists only under a condition is dashed and says so: ``[if NatEnabled]`` on a
resource, ``[if CodeBuildEnabled]`` on a stack, ``if``/``unless`` on a reference made inside
``Fn::If``. Output is sorted, so the same templates always give the same text.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT_TEMPLATE = "root.json"
MANIFEST = "manifest.json"
ARCHITECTURE = "architecture.md"
STACK_TYPE = "AWS::CloudFormation::Stack"
CONDITIONAL_CLASS = "conditional"

# ${Name} or ${Name.Attribute} in Fn::Sub; ${!Literal} is an escaped literal, not a reference.
_SUB_VARIABLE = re.compile(r"\$\{(?!!)([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}")


class DiagramError(ValueError):
    """The templates cannot be drawn (say, the root names a child file that is not there)."""


@dataclass(frozen=True)
class Reference:
    """One reference found in a template: its target, and the ``Fn::If`` branches it sits in."""

    target: str
    attribute: str | None
    conditions: tuple[str, ...]  # "if X" / "unless X", outermost first


@dataclass
class _Edge:
    # Sets of conditions, one per reference that makes this edge; () means "always".
    condition_sets: set[tuple[str, ...]] = field(default_factory=set)

    def conditions(self) -> tuple[str, ...]:
        """The conditions the edge needs: none if any one reference to it is unconditional."""
        if () in self.condition_sets:
            return ()
        return tuple(sorted(set().union(*self.condition_sets)))


def references(node: Any, conditions: tuple[str, ...] = ()) -> Iterator[Reference]:
    """Every ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` variable in a JSON fragment."""
    if isinstance(node, list):
        for item in node:
            yield from references(item, conditions)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        (key, value), = node.items()
        if key == "Ref" and isinstance(value, str):
            yield Reference(value, None, conditions)
            return
        if key == "Fn::GetAtt":
            target, attribute = (value.split(".", 1) if isinstance(value, str) else (value[0], value[1]))
            if isinstance(target, str):
                yield Reference(target, attribute if isinstance(attribute, str) else None, conditions)
            if not isinstance(attribute, str):
                yield from references(attribute, conditions)
            return
        if key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for name in _SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
                if name not in variables:
                    yield Reference(name, None, conditions)
            yield from references(variables, conditions)
            return
        if key == "Fn::If" and isinstance(value, list) and len(value) == 3:
            condition, when_true, when_false = value
            yield from references(when_true, (*conditions, f"if {condition}"))
            yield from references(when_false, (*conditions, f"unless {condition}"))
            return
    for value in node.values():
        yield from references(value, conditions)


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """File name → parsed JSON, for every template of a build folder (the manifest excluded)."""
    documents = {}
    for path in sorted(folder.glob("*.json")):
        if path.name in (MANIFEST, "packaged.json"):
            continue
        documents[path.name] = json.loads(path.read_text(encoding="utf-8"))
    if ROOT_TEMPLATE not in documents:
        raise DiagramError(f"{folder}: no {ROOT_TEMPLATE}; build the environment first (make build)")
    return documents


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def node_id(stack: str, resource: str) -> str:
    """A Mermaid-safe id: alphanumerics, the stack and the resource joined by one underscore."""
    return f"{_safe(stack)}_{_safe(resource)}"


def short_type(resource_type: str) -> str:
    return resource_type.removeprefix("AWS::")


def _label(*lines: str) -> str:
    return '"' + "<br/>".join(line.replace('"', "#quot;") for line in lines) + '"'


def _conditional(condition: str | None) -> tuple[str, ...]:
    return (f"if {condition}",) if condition else ()


def mermaid(documents: dict[str, dict[str, Any]]) -> str:
    """The Mermaid flowchart of one environment's templates (file name → parsed JSON)."""
    root = documents[ROOT_TEMPLATE]
    root_resources = root.get("Resources", {})
    stacks: dict[str, dict[str, Any]] = {}
    for logical_id, resource in sorted(root_resources.items()):
        if resource.get("Type") != STACK_TYPE:
            continue
        url = resource.get("Properties", {}).get("TemplateURL")
        if url not in documents:
            raise DiagramError(f"{ROOT_TEMPLATE}: {logical_id}'s TemplateURL {url!r} is not a template in the "
                               f"build folder (have: {', '.join(sorted(documents))})")
        stacks[logical_id] = documents[url]

    lines = ["flowchart LR"]
    conditional_ids: list[str] = []  # marked dashed: resources and stacks with a Condition
    conditional_nodes: set[str] = set()  # their edges are dashed: those, and everything in a conditional stack
    edges: dict[tuple[str, str, str], _Edge] = defaultdict(_Edge)  # (from, to, arrow label)

    # Root resources that are not nested stacks (none today) are drawn at the top level.
    for logical_id, resource in sorted(root_resources.items()):
        if resource.get("Type") == STACK_TYPE:
            continue
        identifier = node_id("Root", logical_id)
        condition = resource.get("Condition")
        lines.append(f"  {identifier}[{_label(logical_id, short_type(resource['Type']), *_marks(condition))}]")
        if condition:
            conditional_ids.append(identifier)
            conditional_nodes.add(identifier)

    for stack, template in stacks.items():
        stack_condition = root_resources[stack].get("Condition")
        title = [stack, root_resources[stack]["Properties"]["TemplateURL"], *_marks(stack_condition)]
        lines.append(f"  subgraph {_safe(stack)}[{_label(' '.join(title[:2]), *title[2:])}]")
        if stack_condition:
            conditional_ids.append(_safe(stack))
        resources = template.get("Resources", {})
        for logical_id, resource in sorted(resources.items()):
            identifier = node_id(stack, logical_id)
            condition = resource.get("Condition")
            lines.append(f"    {identifier}[{_label(logical_id, short_type(resource['Type']), *_marks(condition))}]")
            if condition:
                conditional_ids.append(identifier)
            if condition or stack_condition:
                conditional_nodes.add(identifier)
            for reference in references(resource.get("Properties", {})):
                if reference.target in resources and reference.target != logical_id:
                    edges[(node_id(stack, reference.target), identifier, "")].condition_sets.add(
                        reference.conditions)
        lines.append("  end")

    for (source, target, label), edge in _wiring(stacks, root_resources).items():
        edges[(source, target, label)].condition_sets |= edge.condition_sets

    for (source, target, label), edge in sorted(edges.items()):
        conditions = edge.conditions()
        text = " ".join([label, *(f"[{condition}]" for condition in conditions)]).strip()
        arrow = "-.->" if conditions or source in conditional_nodes or target in conditional_nodes else (
            "==>" if label else "-->")
        lines.append(f"  {source} {arrow}{'|' + _label(text) + '|' if text else ''} {target}")

    lines.append(f"  classDef {CONDITIONAL_CLASS} stroke-dasharray: 5 5")
    if conditional_ids:
        lines.append(f"  class {','.join(sorted(conditional_ids))} {CONDITIONAL_CLASS}")
    return "\n".join(lines) + "\n"


def _marks(condition: str | None) -> tuple[str, ...]:
    return (f"[if {condition}]",) if condition else ()


def _wiring(stacks: dict[str, dict[str, Any]],
            root_resources: dict[str, Any]) -> dict[tuple[str, str, str], _Edge]:
    """Edges between stacks: the producer of each wired output → each user of the parameter."""
    edges: dict[tuple[str, str, str], _Edge] = defaultdict(_Edge)
    for consumer_stack, template in stacks.items():
        consumer_resources = template.get("Resources", {})
        parameters = root_resources[consumer_stack].get("Properties", {}).get("Parameters", {})
        for parameter, value in sorted(parameters.items()):
            users = [
                (logical_id, reference.conditions)
                for logical_id, resource in sorted(consumer_resources.items())
                for reference in references(resource.get("Properties", {}))
                if reference.target == parameter
            ]
            for wiring in references(value):
                if wiring.target not in stacks or not (wiring.attribute or "").startswith("Outputs."):
                    continue
                output_name = wiring.attribute.removeprefix("Outputs.")
                producer_template = stacks[wiring.target]
                output = producer_template.get("Outputs", {}).get(output_name)
                if output is None:
                    raise DiagramError(f"{ROOT_TEMPLATE}: {consumer_stack}.{parameter} reads "
                                       f"{wiring.target}.Outputs.{output_name}, which that stack does not declare")
                producer_resources = producer_template.get("Resources", {})
                producers = [
                    (produced.target, produced.conditions)
                    for produced in references(output.get("Value"))
                    if produced.target in producer_resources
                ]
                for producer, producer_conditions in producers:
                    for user, user_conditions in users:
                        key = (node_id(wiring.target, producer), node_id(consumer_stack, user), parameter)
                        edges[key].condition_sets.add(tuple(dict.fromkeys(
                            (*_conditional(output.get("Condition")), *producer_conditions,
                             *wiring.conditions, *user_conditions))))
    return edges


def markdown(documents: dict[str, dict[str, Any]], environment: str) -> str:
    """``architecture.md``: a short heading and the diagram in a ``mermaid`` fence."""
    return "\n".join([
        f"# Architecture: {environment}",
        "",
        (f"Generated from `build/{environment}/*.json` by `python -m templates_src`; do not edit. "
         "Arrows point from a resource to what refers to it; thick arrows are the root's wiring of one "
         "stack's output into another's parameter; dashed parts exist only under their condition."),
        "",
        "```mermaid",
        mermaid(documents).rstrip("\n"),
        "```",
        "",
    ])


def write(folder: Path) -> Path:
    """Write ``folder/architecture.md`` from the templates in ``folder``; return its path."""
    path = folder / ARCHITECTURE
    text = markdown(load(folder), folder.name)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path
