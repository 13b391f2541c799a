"""templates_src/lint.py: zero cfn-lint findings of any severity, and cfn-lint's own parent<->child contract check.

The contract tests break the wiring of a real build on purpose and assert cfn-lint's finding: linting
the root from its folder makes cfn-lint open the children named by the relative TemplateURLs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from templates_src import settings
from templates_src.lint import Finding, lint_files
from templates_src.render import render, write

ENVIRONMENTS = settings.available_environments()
TEMPLATES = ["root.json", "network.json", "storage.json", "iam.json", "build.json", "pipeline.json"]


def fresh_build(env: str, tmp_path: Path) -> Path:
    """``build/ENV`` as the generator writes it, in a folder of its own."""
    folder = tmp_path / env
    write(render(settings.load(env)), folder)
    return folder


def edit(path: Path, change: Callable[[dict], Any]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def lint(folder: Path) -> list[Finding]:
    return lint_files([folder / name for name in TEMPLATES], "us-east-1")


def summary(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(Path(finding.file).name, finding.rule, finding.message) for finding in findings]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_shipped_environment_lints_with_no_finding_at_all(env, tmp_path):
    """Errors, warnings and informational findings all count."""
    findings = lint(fresh_build(env, tmp_path))

    assert [str(finding) for finding in findings] == []


@pytest.fixture(scope="module")
def broken_wiring(tmp_path_factory) -> list[tuple[str, str, str]]:
    """The findings of one lint run over a local build whose wiring is broken in several independent
    places (one cfn-lint run costs about a second, so the breaks share it)."""
    folder = fresh_build("local", tmp_path_factory.mktemp("broken"))
    # The root reads StorageStack.Outputs.ArtifactBucketArn, and BuildStack.Outputs.CodeBuildProjectName
    # (a child that exists only under CodeBuildEnabled).
    edit(folder / "storage.json", lambda template: template["Outputs"].pop("ArtifactBucketArn"))
    edit(folder / "build.json", lambda template: template["Outputs"].pop("CodeBuildProjectName"))
    # The root passes ArtifactBucketArn to the IAM stack, which no longer declares it.
    edit(folder / "iam.json", lambda template: template["Parameters"].pop("ArtifactBucketArn"))
    # The storage stack declares two new parameters the root does not pass: one without a default.
    edit(folder / "storage.json", lambda template: template["Parameters"].update({
        "BucketSuffix": {"Type": "String"},
        "BucketPrefix": {"Type": "String", "Default": "x"},
    }))
    return summary(lint(folder))


def test_contract_missing_child_output_is_caught(broken_wiring):
    assert ("root.json", "E1010",
            "'Outputs.ArtifactBucketArn' is not one of ['Outputs.ArtifactBucketName'] in ['us-east-1']"
            ) in broken_wiring


def test_contract_missing_output_of_a_conditional_child_is_caught(broken_wiring):
    assert ("root.json", "E1010",
            "'Outputs.CodeBuildProjectName' is not one of ['Outputs.CodeBuildProjectArn'] in ['us-east-1']"
            ) in broken_wiring


def test_contract_parameter_passed_but_not_declared_is_caught(broken_wiring):
    assert ("root.json", "E3043",
            ("Specified parameter \"ArtifactBucketArn\" doesn't exist in nested stack template at "
             "Resources/IamStack/Properties/Parameters/ArtifactBucketArn")) in broken_wiring


def test_contract_parameter_declared_without_default_but_not_passed_is_caught(broken_wiring):
    assert ("root.json", "E3043",
            ('Nested stack template parameter "BucketSuffix" is not specified at '
             "Resources/StorageStack/Properties/Parameters")) in broken_wiring


def test_contract_parameter_with_a_default_need_not_be_passed(broken_wiring):
    about_prefix = [finding for finding in broken_wiring if "BucketPrefix" in finding[2]]

    assert about_prefix == [("storage.json", "W2001", "Parameter BucketPrefix not used.")]


def test_contract_findings_are_exactly_the_breaks(broken_wiring):
    """Nothing else fails. E1020: iam.json's own Refs to the parameter it lost; E6101: the root's
    forwarded output reading the missing ArtifactBucketArn."""
    assert sorted({(file, rule) for file, rule, _ in broken_wiring}) == [
        ("iam.json", "E1020"), ("root.json", "E1010"), ("root.json", "E3043"), ("root.json", "E6101"),
        ("storage.json", "W2001"),
    ]


def test_relative_template_urls_are_the_one_finding_the_root_suppresses(tmp_path):
    folder = fresh_build("dev", tmp_path)
    edit(folder / "root.json", lambda template: template["Metadata"].pop("cfn-lint"))

    findings = lint(folder)

    assert {(Path(finding.file).name, finding.rule) for finding in findings} == {("root.json", "W3002")}
    assert len(findings) == 5  # one per child TemplateURL


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_root_metadata_suppresses_w3002_and_nothing_else(env):
    metadata = render(settings.load(env))["root.json"]["Metadata"]

    assert metadata["cfn-lint"] == {"config": {"ignore_checks": ["W3002"]}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_resource_suppressions_are_only_for_deliberately_unreachable_if_branches(env):
    """The only other cfn-lint suppression allowed: W1028 on a conditional resource whose Fn::If on its own
    condition exists for LocalStack (see the network tests), each with its reason."""
    for name, document in render(settings.load(env)).items():
        assert "cfn-lint" not in document.get("Metadata", {}) or name == "root.json", name
        for logical_id, resource in document.get("Resources", {}).items():
            metadata = resource.get("Metadata", {})
            if "cfn-lint" not in metadata:
                continue
            ignored = metadata["cfn-lint"]["config"]["ignore_checks"]
            where = f"{name}:{logical_id}"
            assert ignored == ["W1028"], where
            assert set(metadata["LintSuppressionReasons"]) == {"W1028"}, where
            assert f'{{"Fn::If": ["{resource["Condition"]}", ' in json.dumps(resource["Properties"]), where


def test_finding_reads_as_file_line_rule_severity_message():
    finding = Finding(file="build/dev/root.json", line=12, rule="E3043", severity="error", message="broken")

    assert str(finding) == "build/dev/root.json:12: E3043 [error] broken"


def test_lint_refuses_files_from_two_folders(tmp_path):
    one, two = fresh_build("local", tmp_path), fresh_build("dev", tmp_path)

    with pytest.raises(ValueError) as raised:
        lint_files([one / "root.json", two / "root.json"], "us-east-1")

    assert str(raised.value) == f"lint one environment's folder at a time, got {sorted([str(one), str(two)])}"


def test_lint_restores_the_working_directory(tmp_path):
    before = os.getcwd()

    lint_files([fresh_build("local", tmp_path) / "storage.json"], "us-east-1")

    assert os.getcwd() == before
