"""templates_src/stacks/build.py: the CodeBuild project for this Python repository, and its log group."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import yaml

from templates_src import settings
from templates_src.stacks import build

NO_VALUE = {"Ref": "AWS::NoValue"}


def with_build(env: str = "dev", **build_changes: object) -> settings.Settings:
    loaded = settings.load(env)
    return dataclasses.replace(loaded, build=dataclasses.replace(loaded.build, **build_changes))


def rendered(env: str = "dev", **build_changes: object) -> dict:
    return build.template(with_build(env, **build_changes)).to_dict()


def project(env: str = "dev", **build_changes: object) -> dict:
    return rendered(env, **build_changes)["Resources"]["BuildProject"]["Properties"]


def buildspec(env: str = "dev", **build_changes: object) -> dict:
    return yaml.safe_load(project(env, **build_changes)["Source"]["BuildSpec"])


def test_logical_ids_are_stable():
    resources = rendered()["Resources"]

    assert {name: resource["Type"] for name, resource in resources.items()} == {
        "BuildLogGroup": "AWS::Logs::LogGroup",
        "BuildSecurityGroup": "AWS::EC2::SecurityGroup",
        "BuildProject": "AWS::CodeBuild::Project",
    }


@pytest.mark.parametrize(("env", "compute_type", "timeout"), [
    ("dev", "BUILD_GENERAL1_SMALL", 20),
    ("prod", "BUILD_GENERAL1_MEDIUM", 30),
])
def test_environment_is_the_curated_standard_image_from_settings(env, compute_type, timeout):
    properties = project(env)

    assert properties["Environment"] == {
        "Type": "LINUX_CONTAINER",
        "ComputeType": compute_type,
        "Image": "aws/codebuild/standard:8.0",
        "ImagePullCredentialsType": "CODEBUILD",
        "EnvironmentVariables": [{"Name": "ENVIRONMENT", "Type": "PLAINTEXT", "Value": {"Ref": "Environment"}}],
    }
    assert properties["TimeoutInMinutes"] == timeout


def test_image_and_compute_type_follow_changed_settings():
    environment = project(image="aws/codebuild/standard:7.0", compute_type="BUILD_GENERAL1_LARGE")["Environment"]

    assert (environment["Image"], environment["ComputeType"]) == ("aws/codebuild/standard:7.0", "BUILD_GENERAL1_LARGE")


@pytest.mark.parametrize("image", [
    "aws/codebuild/standard:7.0",
    "aws/codebuild/standard:8.0",
    "aws/codebuild/amazonlinux-x86_64-standard:5.0",
    "aws/codebuild/amazonlinux-aarch64-standard:3.0",
])
def test_every_image_the_settings_accept_gets_an_environment_type_that_runs_it(image):
    """aarch64 images run only in ARM_CONTAINER (CodeBuild rejects them in LINUX_CONTAINER); settings must
    either refuse such an image or the template must pick the matching type."""
    data = {"project": "cicd-platform", "region": "us-east-1", "build": {"image": image},
            "github": {"owner": "example-org", "repo": "cicd-platform",
                       "connection_arn": "arn:aws:codeconnections:us-east-1:123456789012:connection/"
                                         "11111111-2222-3333-4444-555555555555"}}
    try:
        loaded = settings.parse(data, "dev", "config/dev.toml")
    except settings.SettingsError:
        assert "aarch64" in image, f"{image} should be accepted"
        return

    environment = build.template(loaded).to_dict()["Resources"]["BuildProject"]["Properties"]["Environment"]
    expected = "ARM_CONTAINER" if "aarch64" in image else "LINUX_CONTAINER"
    assert environment["Type"] == expected


@pytest.mark.parametrize(("env", "days"), [("local", 7), ("dev", 30), ("prod", 365)])
def test_log_group_has_the_configured_retention_and_the_project_writes_to_it(env, days):
    resources = rendered(env)["Resources"]
    group = resources["BuildLogGroup"]

    assert group["Properties"]["RetentionInDays"] == days
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/codebuild/${ProjectName}-${Environment}"}
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert resources["BuildProject"]["Properties"]["LogsConfig"] == {
        "CloudWatchLogs": {"Status": "ENABLED", "GroupName": {"Ref": "BuildLogGroup"}}}


def test_project_is_named_for_the_iam_policies_and_runs_as_the_passed_role():
    properties = project()

    # iam.py grants on ...:project/${ProjectName}-${Environment}; the names must agree.
    assert properties["Name"] == {"Fn::Sub": "${ProjectName}-${Environment}"}
    assert properties["ServiceRole"] == {"Ref": "CodeBuildRoleArn"}
    assert properties["Source"]["Type"] == "CODEPIPELINE"
    assert properties["Artifacts"] == {"Type": "CODEPIPELINE"}


@pytest.mark.parametrize("python_version", ["3.12", "3.13"])
def test_buildspec_installs_the_configured_python_and_the_pinned_requirements(python_version):
    spec = buildspec(python_version=python_version)
    install = spec["phases"]["install"]

    assert spec["version"] == 0.2
    assert install["runtime-versions"] == {"python": python_version}
    assert any("pip install -r requirements.txt" in command for command in install["commands"])


def test_buildspec_builds_lints_and_tests_the_templates():
    commands = buildspec()["phases"]["build"]["commands"]

    assert "python -m templates_src --all --lint" in commands
    assert any(re.match(r"python -m pytest\b", command) for command in commands)
    # The emulator-backed tests cannot run in CodeBuild.
    assert any('-m "not localstack"' in command for command in commands if "pytest" in command)


def test_buildspec_reports_pytest_results_to_the_report_group_iam_allows():
    spec = buildspec()

    # iam.py grants on report-group/${ProjectName}-${Environment}-pytest: the report must be named "pytest".
    assert spec["reports"] == {"pytest": {"files": ["reports/pytest.xml"], "file-format": "JUNITXML"}}
    assert any("--junitxml=reports/pytest.xml" in command for command in spec["phases"]["build"]["commands"])


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_no_node_tooling_anywhere(env):
    text = json.dumps(rendered(env)).lower()

    assert re.findall(r"\b(npm|npx|node|nodejs|yarn)\b", text) == []


def test_vpc_config_only_under_nat_enabled():
    template = rendered()
    resources = template["Resources"]

    assert template["Conditions"] == {"NatEnabled": {"Fn::Equals": [{"Ref": "EnableNat"}, "true"]}}
    assert resources["BuildProject"]["Properties"]["VpcConfig"] == {"Fn::If": [
        "NatEnabled",
        {
            "VpcId": {"Ref": "VpcId"},
            "Subnets": {"Fn::Split": [",", {"Ref": "PrivateSubnetIds"}]},
            "SecurityGroupIds": [{"Fn::GetAtt": ["BuildSecurityGroup", "GroupId"]}],
        },
        NO_VALUE,
    ]}
    assert "Condition" not in resources["BuildProject"]
    assert resources["BuildSecurityGroup"]["Condition"] == "NatEnabled"
    assert resources["BuildSecurityGroup"]["Properties"]["VpcId"] == {"Ref": "VpcId"}
    assert resources["BuildSecurityGroup"]["Properties"]["SecurityGroupEgress"] == [{
        "IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "Builds download packages through NAT"}]
    assert "SecurityGroupIngress" not in resources["BuildSecurityGroup"]["Properties"]


def test_template_is_the_same_whichever_way_nat_is_set():
    loaded = settings.load("dev")
    with_nat = dataclasses.replace(loaded, network=dataclasses.replace(loaded.network, enable_nat=True))

    assert build.template(with_nat).to_dict() == build.template(loaded).to_dict()


def test_parameters_and_outputs():
    template = rendered()

    assert set(template["Parameters"]) == {
        "ProjectName", "Environment", "CodeBuildRoleArn", "EnableNat", "VpcId", "PrivateSubnetIds"}
    assert {name: output["Value"] for name, output in template["Outputs"].items()} == {
        "CodeBuildProjectName": {"Ref": "BuildProject"},
        "CodeBuildProjectArn": {"Fn::GetAtt": ["BuildProject", "Arn"]},
    }
