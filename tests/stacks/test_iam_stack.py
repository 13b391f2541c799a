"""templates_src/stacks/iam.py (and the awacs builders of policies.py): two service roles, least privilege.

Trust pins the service and the account; no Allow has a wildcard action; every Allow names exact ARNs
except the EC2 network-interface statement, which AWS cannot scope; the connection statement exists only
in codestar-connection mode; the VPC policy only under NatEnabled.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from templates_src import settings
from templates_src.stacks import iam

LEGACY_CONNECTION = ("arn:aws:codestar-connections:us-east-1:123456789012:connection/"
                     "11111111-2222-3333-4444-555555555555")
DEV_CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
BUCKET_ARN = {"Ref": "ArtifactBucketArn"}
BUCKET_OBJECTS = {"Fn::Sub": ["${Arn}/*", {"Arn": BUCKET_ARN}]}


def account_arn(service: str, resource: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


LOG_GROUP = account_arn("logs", "log-group:/aws/codebuild/${ProjectName}-${Environment}")


def rendered(env: str = "dev", **github_changes: Any) -> dict:
    loaded = settings.load(env)
    if github_changes:
        loaded = dataclasses.replace(loaded, github=dataclasses.replace(loaded.github, **github_changes))
    return iam.template(loaded).to_dict()


def policy_documents(template: dict) -> Iterator[tuple[str, dict]]:
    """(resource name, document) for every permission policy in the template (not trust policies)."""
    for name, resource in template["Resources"].items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield name, policy["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::Policy":
            yield name, properties["PolicyDocument"]


def allow_statements(template: dict) -> Iterator[tuple[str, dict]]:
    for name, document in policy_documents(template):
        for statement in document["Statement"]:
            if statement["Effect"] == "Allow":
                yield name, statement


def statements_by_sid(template: dict, resource: str) -> dict[str, tuple[list, list]]:
    return {statement["Sid"]: (statement["Action"], statement["Resource"])
            for name, statement in allow_statements(template) if name == resource}


def as_text(resource: Any) -> str:
    """An ARN as a string with its Sub variables filled in, so it can be checked for wildcards."""
    if isinstance(resource, str):
        return resource
    if resource.keys() == {"Ref"}:
        return f"<{resource['Ref']}>"
    text, variables = (resource["Fn::Sub"], {}) if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"]
    for name, value in variables.items():
        text = text.replace(f"${{{name}}}", as_text(value))
    return text


TEMPLATES = [
    pytest.param(rendered("dev"), id="dev-codestar-connection"),
    pytest.param(rendered("prod"), id="prod-secretsmanager-token"),
    pytest.param(rendered("dev", connection_arn=LEGACY_CONNECTION), id="dev-legacy-connection"),
]


def test_logical_ids_are_stable():
    resources = rendered()["Resources"]

    assert {name: resource["Type"] for name, resource in resources.items()} == {
        "CodeBuildServiceRole": "AWS::IAM::Role",
        "CodeBuildVpcAccessPolicy": "AWS::IAM::Policy",
        "PipelineServiceRole": "AWS::IAM::Role",
    }


@pytest.mark.parametrize(("role", "service"), [
    ("CodeBuildServiceRole", "codebuild.amazonaws.com"),
    ("PipelineServiceRole", "codepipeline.amazonaws.com"),
])
def test_trust_policy_names_the_service_and_pins_the_account(role, service):
    trust = rendered()["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]

    assert trust == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": [service]},
            "Action": ["sts:AssumeRole"],
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }],
    }


@pytest.mark.parametrize(("role", "name"), [
    ("CodeBuildServiceRole", "${ProjectName}-${Environment}-codebuild-${AWS::Region}"),
    ("PipelineServiceRole", "${ProjectName}-${Environment}-pipeline-${AWS::Region}"),
])
def test_role_names_are_unique_per_environment_and_region(role, name):
    assert rendered()["Resources"][role]["Properties"]["RoleName"] == {"Fn::Sub": name}


@pytest.mark.parametrize("template", TEMPLATES)
def test_no_allow_statement_has_a_wildcard_action(template):
    actions = [action for _, statement in allow_statements(template) for action in statement["Action"]]

    assert actions
    assert [action for action in actions if "*" in action] == []
    assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action) for action in actions), actions


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_allow_resource_is_an_exact_arn_except_network_interfaces(template):
    for name, statement in allow_statements(template):
        if statement["Sid"] == "DescribeNetwork":
            # EC2 Describe* and Create/DeleteNetworkInterface as CodeBuild calls them have no
            # resource-level permissions: the one "*".
            assert statement["Resource"] == ["*"]
            assert name == "CodeBuildVpcAccessPolicy"
            continue
        for resource in statement["Resource"]:
            text = as_text(resource)
            assert text.startswith(("arn:", "<ArtifactBucketArn>")), (statement["Sid"], text)
            # A "*" only for the children of one named resource: its objects, streams, ENIs.
            assert re.fullmatch(r"[^*]+(/\*|:log-stream:\*)?", text), (statement["Sid"], text)
            assert ":*:" not in text and "::*" not in text


def test_codebuild_role_reaches_artifacts_its_log_group_and_report_group():
    assert statements_by_sid(rendered(), "CodeBuildServiceRole") == {
        "ArtifactObjects": (["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [BUCKET_OBJECTS]),
        "ArtifactBucket": (["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket"], [BUCKET_ARN]),
        "BuildLogs": (["logs:CreateLogStream", "logs:PutLogEvents"],
                      [LOG_GROUP, {"Fn::Sub": ["${Group}:log-stream:*", {"Group": LOG_GROUP}]}]),
        "TestReports": (["codebuild:CreateReportGroup", "codebuild:CreateReport", "codebuild:UpdateReport",
                         "codebuild:BatchPutTestCases"],
                        [account_arn("codebuild", "report-group/${ProjectName}-${Environment}-pytest")]),
    }


def test_pipeline_role_in_codestar_connection_mode_uses_exactly_the_connection():
    assert statements_by_sid(rendered("dev"), "PipelineServiceRole") == {
        "ArtifactObjects": (["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [BUCKET_OBJECTS]),
        "ArtifactBucket": (["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket"], [BUCKET_ARN]),
        "RunBuild": (["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                     [account_arn("codebuild", "project/${ProjectName}-${Environment}")]),
        "GitHubConnection": (["codeconnections:UseConnection"], [DEV_CONNECTION]),
    }


def test_a_legacy_codestar_connections_arn_gets_the_matching_action():
    statements = statements_by_sid(rendered("dev", connection_arn=LEGACY_CONNECTION), "PipelineServiceRole")

    assert statements["GitHubConnection"] == (["codestar-connections:UseConnection"], [LEGACY_CONNECTION])


def test_token_mode_grants_no_connection_and_no_secret_access():
    template = rendered("prod")
    statements = statements_by_sid(template, "PipelineServiceRole")
    text = json.dumps(template)

    assert set(statements) == {"ArtifactObjects", "ArtifactBucket", "RunBuild"}
    assert "UseConnection" not in text
    assert "secretsmanager" not in text


def test_vpc_access_policy_exists_only_under_nat_enabled():
    template = rendered()
    policy = template["Resources"]["CodeBuildVpcAccessPolicy"]

    assert template["Conditions"] == {"NatEnabled": {"Fn::Equals": [{"Ref": "EnableNat"}, "true"]}}
    assert policy["Condition"] == "NatEnabled"
    assert policy["Properties"]["Roles"] == [{"Ref": "CodeBuildServiceRole"}]
    assert [name for name, resource in template["Resources"].items() if "Condition" in resource] == [
        "CodeBuildVpcAccessPolicy"]
    assert statements_by_sid(template, "CodeBuildVpcAccessPolicy") == {
        "DescribeNetwork": (["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeDhcpOptions",
                             "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
                             "ec2:DescribeVpcs"], ["*"]),
        "AttachNetworkInterface": (["ec2:CreateNetworkInterfacePermission"],
                                   [account_arn("ec2", "network-interface/*")]),
    }


def test_eni_permission_is_limited_to_codebuild():
    statement = next(statement for _, statement in allow_statements(rendered())
                     if statement["Sid"] == "AttachNetworkInterface")

    assert statement["Condition"] == {"StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"}}


def test_the_role_permissions_do_not_depend_on_the_nat_setting():
    loaded = settings.load("dev")
    with_nat = dataclasses.replace(loaded, network=dataclasses.replace(loaded.network, enable_nat=True))

    assert iam.template(with_nat).to_dict() == iam.template(loaded).to_dict()


def test_outputs_are_role_arns():
    outputs = rendered()["Outputs"]

    assert {name: output["Value"] for name, output in outputs.items()} == {
        "CodeBuildRoleArn": {"Fn::GetAtt": ["CodeBuildServiceRole", "Arn"]},
        "PipelineRoleArn": {"Fn::GetAtt": ["PipelineServiceRole", "Arn"]},
    }


def test_parameters_are_what_the_root_passes():
    parameters = rendered()["Parameters"]

    assert set(parameters) == {"ProjectName", "Environment", "ArtifactBucketArn", "EnableNat"}
    assert not any("Default" in parameter for parameter in parameters.values())
