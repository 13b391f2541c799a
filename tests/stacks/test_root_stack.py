"""templates_src/stacks/root.py: parameters, conditions, one Stack per child wired by GetAtt Outputs,
forwarded outputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from templates_src import settings
from templates_src.render import CHILD_MODULES
from templates_src.stacks import root

CHILDREN = ("NetworkStack", "StorageStack", "IamStack", "BuildStack", "PipelineStack")
IDENTITY = {"ProjectName": {"Ref": "ProjectName"}, "Environment": {"Ref": "Environment"}}


def rendered(env: str = "dev") -> dict:
    return root.template(settings.load(env)).to_dict()


def child_output(stack: str, output: str) -> dict:
    return {"Fn::GetAtt": [stack, f"Outputs.{output}"]}


def unwrap(value: Any) -> Any:
    """The value a parameter gets when its Fn::If is true (LocalStack's conditional-reference wrapper)."""
    if isinstance(value, dict) and value.keys() == {"Fn::If"}:
        _condition, when_true, when_false = value["Fn::If"]
        assert when_false == {"Ref": "AWS::NoValue"}
        return unwrap(when_true)
    return value


@pytest.mark.parametrize(("env", "codebuild", "nat"), [("local", "false", "false"), ("dev", "true", "false"),
                                                       ("prod", "true", "false")])
def test_parameters_default_to_the_settings(env, codebuild, nat):
    parameters = rendered(env)["Parameters"]

    assert parameters["Environment"]["Default"] == env
    assert parameters["Environment"]["AllowedValues"] == [env]
    assert parameters["ProjectName"]["Default"] == "cicd-platform"
    assert parameters["EnableCodeBuild"]["Default"] == codebuild
    assert parameters["EnableNat"]["Default"] == nat
    assert parameters["EnableCodeBuild"]["AllowedValues"] == parameters["EnableNat"]["AllowedValues"] == [
        "true", "false"]
    assert set(parameters) == {"ProjectName", "Environment", "EnableCodeBuild", "EnableNat"}


def test_nat_setting_changes_the_root_default():
    loaded = settings.load("dev")
    with_nat = dataclasses.replace(loaded, network=dataclasses.replace(loaded.network, enable_nat=True))

    assert root.template(with_nat).to_dict()["Parameters"]["EnableNat"]["Default"] == "true"


def test_codebuild_setting_changes_the_root_default():
    loaded = settings.load("local")
    with_codebuild = dataclasses.replace(loaded, build=dataclasses.replace(loaded.build, enable_codebuild=True))

    assert root.template(with_codebuild).to_dict()["Parameters"]["EnableCodeBuild"]["Default"] == "true"


def test_codebuild_condition():
    assert rendered()["Conditions"] == {"CodeBuildEnabled": {"Fn::Equals": [{"Ref": "EnableCodeBuild"}, "true"]}}


@pytest.mark.parametrize("env", ["local", "dev"])
def test_only_build_and_pipeline_depend_on_codebuild(env):
    resources = rendered(env)["Resources"]

    assert list(resources) == list(CHILDREN)
    assert {name: resource.get("Condition") for name, resource in resources.items()} == {
        "NetworkStack": None, "StorageStack": None, "IamStack": None,
        "BuildStack": "CodeBuildEnabled", "PipelineStack": "CodeBuildEnabled",
    }
    assert {resource["Type"] for resource in resources.values()} == {"AWS::CloudFormation::Stack"}


def test_template_urls_are_the_childrens_relative_file_names():
    resources = rendered()["Resources"]

    assert {name: resource["Properties"]["TemplateURL"] for name, resource in resources.items()} == {
        "NetworkStack": "network.json", "StorageStack": "storage.json", "IamStack": "iam.json",
        "BuildStack": "build.json", "PipelineStack": "pipeline.json",
    }
    assert set(root.CHILD_FILES) == set(CHILD_MODULES)


def test_children_are_wired_by_parameters_and_getatt_outputs():
    resources = rendered()["Resources"]
    parameters = {name: {key: unwrap(value) for key, value in resource["Properties"]["Parameters"].items()}
                  for name, resource in resources.items()}

    assert parameters == {
        "NetworkStack": {**IDENTITY, "EnableNat": {"Ref": "EnableNat"}},
        "StorageStack": IDENTITY,
        "IamStack": {**IDENTITY, "EnableNat": {"Ref": "EnableNat"},
                     "ArtifactBucketArn": child_output("StorageStack", "ArtifactBucketArn")},
        "BuildStack": {**IDENTITY, "EnableNat": {"Ref": "EnableNat"},
                       "CodeBuildRoleArn": child_output("IamStack", "CodeBuildRoleArn"),
                       "VpcId": child_output("NetworkStack", "VpcId"),
                       "PrivateSubnetIds": child_output("NetworkStack", "PrivateSubnetIds")},
        "PipelineStack": {**IDENTITY,
                          "PipelineRoleArn": child_output("IamStack", "PipelineRoleArn"),
                          "ArtifactBucketName": child_output("StorageStack", "ArtifactBucketName"),
                          "CodeBuildProjectName": child_output("BuildStack", "CodeBuildProjectName")},
    }


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_every_parameter_a_child_declares_without_default_is_passed_and_every_passed_one_declared(env):
    loaded = settings.load(env)
    resources = root.template(loaded).to_dict()["Resources"]

    for name, module in CHILD_MODULES.items():
        declared = module.template(loaded).to_dict()["Parameters"]
        required = {key for key, parameter in declared.items() if "Default" not in parameter}
        passed = set(resources[name]["Properties"]["Parameters"])
        assert required <= passed <= set(declared), name


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_every_output_the_root_reads_exists_in_its_child(env):
    loaded = settings.load(env)
    template = root.template(loaded).to_dict()
    outputs = {name: set(module.template(loaded).to_dict()["Outputs"]) for name, module in CHILD_MODULES.items()}

    def getatts(node: Any):
        if isinstance(node, dict):
            if node.keys() == {"Fn::GetAtt"}:
                yield node["Fn::GetAtt"]
            for value in node.values():
                yield from getatts(value)
        elif isinstance(node, list):
            for value in node:
                yield from getatts(value)

    read = list(getatts(template))
    assert len(read) == 15
    for stack, attribute in read:
        assert attribute.startswith("Outputs.")
        assert attribute.removeprefix("Outputs.") in outputs[stack], (stack, attribute)


def test_forwarded_outputs_carry_the_condition_of_their_child():
    outputs = rendered()["Outputs"]

    assert outputs == {
        "VpcId": {"Value": child_output("NetworkStack", "VpcId")},
        "PublicSubnetIds": {"Value": child_output("NetworkStack", "PublicSubnetIds")},
        "ArtifactBucketName": {"Value": child_output("StorageStack", "ArtifactBucketName")},
        "ArtifactBucketArn": {"Value": child_output("StorageStack", "ArtifactBucketArn")},
        "CodeBuildRoleArn": {"Value": child_output("IamStack", "CodeBuildRoleArn")},
        "PipelineRoleArn": {"Value": child_output("IamStack", "PipelineRoleArn")},
        "CodeBuildProjectName": {"Condition": "CodeBuildEnabled",
                                 "Value": child_output("BuildStack", "CodeBuildProjectName")},
        "PipelineName": {"Condition": "CodeBuildEnabled", "Value": child_output("PipelineStack", "PipelineName")},
    }


def test_child_stack_resources_hold_no_data_and_are_tagged():
    for name, resource in rendered()["Resources"].items():
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Delete", "Delete"), name
        assert resource["Properties"]["Tags"] == [
            {"Key": "Environment", "Value": {"Ref": "Environment"}},
            {"Key": "Project", "Value": {"Ref": "ProjectName"}},
        ]


def test_w3002_is_the_only_suppression_in_the_root_metadata_and_it_says_why():
    metadata = rendered()["Metadata"]

    assert metadata["cfn-lint"] == {"config": {"ignore_checks": ["W3002"]}}
    assert list(metadata["LintSuppressionReasons"]) == ["W3002"]
    assert "relative" in metadata["LintSuppressionReasons"]["W3002"]
