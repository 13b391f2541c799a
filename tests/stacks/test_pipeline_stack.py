"""templates_src/stacks/pipeline.py: CodePipeline V2 from GitHub to the CodeBuild project.

codestar-connection mode (dev) uses the connection; secretsmanager-token mode (prod) uses the GitHub
action with a ``{{resolve:secretsmanager:...}}`` token, which never appears as a parameter, default or output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from templates_src import settings
from templates_src.render import render
from templates_src.stacks import pipeline

DEV_CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
SECRET = "github/cicd-platform-token"
DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:[^}]+\}\}")


def rendered(env: str) -> dict:
    return pipeline.template(settings.load(env)).to_dict()


def stages(env: str) -> dict[str, list[dict]]:
    properties = rendered(env)["Resources"]["Pipeline"]["Properties"]
    return {stage["Name"]: stage["Actions"] for stage in properties["Stages"]}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def values_of(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in ``node``."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key:
                yield value
            yield from values_of(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from values_of(value, key)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_pipeline_is_v2_with_artifacts_in_the_bucket_and_the_passed_role(env):
    properties = rendered(env)["Resources"]["Pipeline"]["Properties"]

    assert properties["PipelineType"] == "V2"
    assert properties["Name"] == {"Fn::Sub": "${ProjectName}-${Environment}"}
    assert properties["RoleArn"] == {"Ref": "PipelineRoleArn"}
    assert properties["ArtifactStore"] == {"Type": "S3", "Location": {"Ref": "ArtifactBucketName"}}
    assert [stage["Name"] for stage in properties["Stages"]] == ["Source", "Build"]


def test_dev_source_is_the_codestar_connection():
    assert stages("dev")["Source"] == [{
        "Name": "GitHub",
        "ActionTypeId": {"Category": "Source", "Owner": "AWS", "Provider": "CodeStarSourceConnection", "Version": "1"},
        "Configuration": {
            "ConnectionArn": DEV_CONNECTION,
            "FullRepositoryId": "example-org/cicd-platform",
            "BranchName": "main",
            "DetectChanges": "true",
            "OutputArtifactFormat": "CODE_ZIP",
        },
        "OutputArtifacts": [{"Name": "SourceOutput"}],
        "RunOrder": 1,
    }]


def test_connection_mode_has_no_webhook_and_no_secret():
    template = rendered("dev")

    assert set(template["Resources"]) == {"Pipeline"}
    assert "resolve:secretsmanager" not in json.dumps(template)


def test_prod_source_is_the_github_action_with_a_dynamic_reference_token():
    assert stages("prod")["Source"] == [{
        "Name": "GitHub",
        "ActionTypeId": {"Category": "Source", "Owner": "ThirdParty", "Provider": "GitHub", "Version": "1"},
        "Configuration": {
            "Owner": "example-org",
            "Repo": "cicd-platform",
            "Branch": "main",
            "OAuthToken": f"{{{{resolve:secretsmanager:{SECRET}:SecretString:token}}}}",
            "PollForSourceChanges": "false",
        },
        "OutputArtifacts": [{"Name": "SourceOutput"}],
        "RunOrder": 1,
    }]


def test_token_mode_webhook_triggers_the_source_action_on_the_branch():
    webhook = rendered("prod")["Resources"]["GitHubWebhook"]

    assert webhook["Type"] == "AWS::CodePipeline::Webhook"
    assert webhook["Properties"] == {
        "Authentication": "GITHUB_HMAC",
        "AuthenticationConfiguration": {
            "SecretToken": f"{{{{resolve:secretsmanager:{SECRET}:SecretString:webhook_secret}}}}"},
        "Filters": [{"JsonPath": "$.ref", "MatchEquals": "refs/heads/{Branch}"}],
        "TargetPipeline": {"Ref": "Pipeline"},
        "TargetAction": "GitHub",
        "TargetPipelineVersion": {"Fn::GetAtt": ["Pipeline", "Version"]},
        "RegisterWithThirdParty": True,
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_pipeline_parameters_have_no_defaults(env):
    assert list(values_of(rendered(env)["Parameters"], "Default")) == []


@pytest.mark.parametrize("name", ["root.json", "network.json", "storage.json", "iam.json", "build.json",
                                  "pipeline.json"])
def test_the_token_is_never_a_parameter_a_default_or_an_output(name):
    """Scans every template of prod, where the token is used."""
    template = render(settings.load("prod"))[name]

    # No parameter is about a secret, under any name, and no default holds one.
    assert [parameter for parameter in template.get("Parameters", {})
            if re.search(r"token|secret|oauth", parameter, re.IGNORECASE)] == []
    for default in values_of(template.get("Parameters", {}), "Default"):
        assert "resolve" not in str(default) and SECRET not in str(default)
    # Outputs never mention the secret.
    outputs = json.dumps(template.get("Outputs", {}))
    assert "resolve" not in outputs and SECRET not in outputs and "token" not in outputs.lower()
    # Wherever the secret's name appears, it is inside a dynamic reference CloudFormation resolves.
    for text in strings(template):
        if SECRET in text:
            assert DYNAMIC_REFERENCE.fullmatch(text), text


def test_the_secret_is_referenced_only_by_the_source_action_and_the_webhook():
    template = rendered("prod")

    assert sorted(text for text in strings(template) if "resolve:secretsmanager" in text) == [
        f"{{{{resolve:secretsmanager:{SECRET}:SecretString:token}}}}",
        f"{{{{resolve:secretsmanager:{SECRET}:SecretString:webhook_secret}}}}",
    ]


def test_build_stage_runs_the_passed_project_on_the_source():
    assert stages("dev")["Build"] == [{
        "Name": "BuildLintTest",
        "ActionTypeId": {"Category": "Build", "Owner": "AWS", "Provider": "CodeBuild", "Version": "1"},
        "Configuration": {"ProjectName": {"Ref": "CodeBuildProjectName"}},
        "InputArtifacts": [{"Name": "SourceOutput"}],
        "OutputArtifacts": [{"Name": "BuildOutput"}],
        "RunOrder": 1,
    }]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_parameters_and_outputs(env):
    template = rendered(env)

    assert set(template["Parameters"]) == {
        "ProjectName", "Environment", "PipelineRoleArn", "ArtifactBucketName", "CodeBuildProjectName"}
    assert {name: output["Value"] for name, output in template["Outputs"].items()} == {
        "PipelineName": {"Ref": "Pipeline"}}
