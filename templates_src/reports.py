"""Lint findings as files for CI: SARIF 2.1.0 (GitHub code scanning) and JUnit XML (test reports).

Both are written from the ``Finding`` objects of the one-process lint (``templates_src.lint``),
so they say exactly what the console said. A clean build still writes both: a SARIF run with no
results (which closes alerts code scanning had open) and a JUnit testcase per template, passing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from templates_src.lint import Finding

REPO_ROOT = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
SOURCE_ROOT = "%SRCROOT%"  # the base GitHub resolves relative artifact URIs against: the checkout
# cfn-lint's severities → SARIF's levels (SARIF 2.1.0 §3.27.10).
LEVELS = {"error": "error", "warning": "warning", "informational": "note"}


@dataclass(frozen=True)
class EnvironmentLint:
    """One environment's lint: the templates it covered and what it found in them."""

    environment: str
    templates: list[Path]
    findings: list[Finding]


def _rules_metadata(rule_ids: set[str]) -> dict[str, Any]:
    """cfn-lint's own description of each rule that fired (loading the rules costs about 1 s)."""
    from cfnlint.config import _DEFAULT_RULESDIR
    from cfnlint.rules import Rules

    known = Rules.create_from_directory(_DEFAULT_RULESDIR) if rule_ids else {}
    return {rule_id: known.get(rule_id) for rule_id in rule_ids}


def _uri(file: str, root: Path) -> tuple[str, str | None]:
    """(uri, uriBaseId): relative to ``root`` when the file is under it, else an absolute file URI."""
    path = Path(file).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix(), SOURCE_ROOT
    except ValueError:
        return path.as_uri(), None


def _display(path: Path) -> str:
    uri, base = _uri(str(path), REPO_ROOT)
    return uri if base else str(path)


def sarif(findings: list[Finding], root: Path = REPO_ROOT) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run of cfn-lint: one result per finding, the rules that fired."""
    from cfnlint.version import __version__ as cfn_lint_version

    rule_ids = sorted({finding.rule for finding in findings})
    metadata = _rules_metadata(set(rule_ids))
    rules = []
    for rule_id in rule_ids:
        rule = metadata[rule_id]
        descriptor: dict[str, Any] = {"id": rule_id}
        if rule is not None:
            descriptor.update({
                "shortDescription": {"text": rule.shortdesc},
                "fullDescription": {"text": rule.description},
                "helpUri": rule.source_url,
                "defaultConfiguration": {"level": LEVELS.get(rule.severity, "warning")},
            })
        rules.append(descriptor)

    results = []
    for finding in findings:
        uri, base = _uri(finding.file, root)
        artifact = {"uri": uri, **({"uriBaseId": base} if base else {})}
        results.append({
            "ruleId": finding.rule,
            "ruleIndex": rule_ids.index(finding.rule),
            "level": LEVELS.get(finding.severity, "warning"),
            "message": {"text": finding.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": artifact,
                # SARIF lines start at 1; cfn-lint reports a whole-file problem at line 0 or 1.
                "region": {"startLine": max(finding.line, 1)},
            }}],
        })

    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "cfn-lint",
                "version": cfn_lint_version,
                "informationUri": "https://github.com/aws-cloudformation/cfn-lint",
                "rules": rules,
            }},
            "originalUriBaseIds": {SOURCE_ROOT: {"description": {"text": "The repository root."}}},
            "columnKind": "utf16CodeUnits",
            "results": results,
        }],
    }


def junit(runs: list[EnvironmentLint]) -> ElementTree.ElementTree:
    """JUnit XML: a testsuite per environment, a testcase per template, failing with its findings."""
    suites = ElementTree.Element("testsuites", name="cfn-lint")
    total_tests = total_failures = 0
    for run in runs:
        by_file: dict[Path, list[Finding]] = {}
        for finding in run.findings:
            by_file.setdefault(Path(finding.file).resolve(), []).append(finding)
        templates = [path.resolve() for path in run.templates]
        # A finding in a file the run did not list (cannot happen today) still gets reported.
        templates += sorted(set(by_file) - set(templates))
        suite = ElementTree.SubElement(suites, "testsuite", name=run.environment)
        failures = 0
        for template in templates:
            case = ElementTree.SubElement(suite, "testcase", classname=f"cfn-lint.{run.environment}",
                                          name=template.name, file=_display(template))
            found = by_file.get(template, [])
            if found:
                failures += 1
                failure = ElementTree.SubElement(
                    case, "failure", type="cfn-lint",
                    message=f"{len(found)} finding{'s' if len(found) > 1 else ''}: "
                            + ", ".join(sorted({f.rule for f in found})),
                )
                failure.text = "\n".join(f"line {f.line}: {f.rule} [{f.severity}] {f.message}" for f in found)
        suite.set("tests", str(len(templates)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += len(templates)
        total_failures += failures
    suites.set("tests", str(total_tests))
    suites.set("failures", str(total_failures))
    suites.set("errors", "0")
    tree = ElementTree.ElementTree(suites)
    ElementTree.indent(tree)
    return tree


def write_sarif(path: Path, findings: list[Finding], root: Path = REPO_ROOT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sarif(findings, root), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_junit(path: Path, runs: list[EnvironmentLint]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit(runs).write(path, encoding="utf-8", xml_declaration=True)
    return path
