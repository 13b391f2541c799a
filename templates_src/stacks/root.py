"""Root stack: only wires the child stacks together.

Each child is an ``AWS::CloudFormation::Stack`` whose ``TemplateURL`` is the child's file name
next to the root (``network.json``, ...): ``aws cloudformation package`` and ``deploy.py`` upload
them and rewrite the URLs, and cfn-lint, run from the build folder, follows them to check that
every parameter passed is declared and every ``Outputs.X`` read exists. Build and pipeline exist
only under ``EnableCodeBuild`` (off where CodeBuild is not emulated, such as LocalStack Community).
"""

from __future__ import annotations

from troposphere import Equals, GetAtt, Output, Ref, Template
from troposphere.cloudformation import Stack

from templates_src import naming
from templates_src.conditions import UNREACHABLE_BRANCH_IS_DELIBERATE, only_if
from templates_src.settings import Settings

CODEBUILD_ENABLED = "CodeBuildEnabled"
CHILD_FILES = {
    "NetworkStack": "network.json",
    "StorageStack": "storage.json",
    "IamStack": "iam.json",
    "BuildStack": "build.json",
    "PipelineStack": "pipeline.json",
}


def _child_output(stack: str, output: str) -> GetAtt:
    return GetAtt(stack, f"Outputs.{output}")


def template(settings: Settings) -> Template:
    t = Template(Description=f"{settings.project} CI/CD platform ({settings.environment}): root of the nested stacks")
    t.set_metadata({
        # The one expected finding: cfn-lint wants TemplateURLs on S3, but these are relative on
        # purpose (packaging uploads them and rewrites the URLs; linting from build/ENV follows them).
        "cfn-lint": {"config": {"ignore_checks": ["W3002"]}},
        "LintSuppressionReasons": {
            "W3002": "TemplateURLs are the children's relative file names until packaged to S3.",
        },
    })
    naming.add_identity_parameters(t, settings, with_defaults=True)
    t.add_parameter(naming.flag_parameter(
        "EnableCodeBuild", "Create the CodeBuild project and the pipeline (false where CodeBuild is not "
        "available, such as LocalStack Community).", default=settings.build.enable_codebuild))
    t.add_parameter(naming.flag_parameter(
        "EnableNat", "Create a NAT gateway and private subnets, and run builds there.",
        default=settings.network.enable_nat))
    t.add_condition(CODEBUILD_ENABLED, Equals(Ref("EnableCodeBuild"), "true"))

    identity = {name: Ref(name) for name in (naming.PROJECT_PARAMETER, naming.ENVIRONMENT_PARAMETER)}

    def child(title: str, condition: str | None = None, metadata: dict | None = None,
              **parameters: object) -> Stack:
        options = {"Condition": condition} if condition else {}
        if metadata:
            options["Metadata"] = metadata
        # Deleting a child deletes its resources, each under its own DeletionPolicy (the
        # artifact bucket's follows the settings); the Stack resource itself holds no data.
        return t.add_resource(Stack(
            title, DeletionPolicy="Delete", UpdateReplacePolicy="Delete",
            TemplateURL=CHILD_FILES[title], Parameters={**identity, **parameters},
            Tags=naming.tags(), **options,
        ))

    child("NetworkStack", EnableNat=Ref("EnableNat"))
    child("StorageStack")
    child("IamStack", EnableNat=Ref("EnableNat"),
          ArtifactBucketArn=_child_output("StorageStack", "ArtifactBucketArn"))
    child("BuildStack", CODEBUILD_ENABLED,
          CodeBuildRoleArn=_child_output("IamStack", "CodeBuildRoleArn"),
          EnableNat=Ref("EnableNat"),
          VpcId=_child_output("NetworkStack", "VpcId"),
          PrivateSubnetIds=_child_output("NetworkStack", "PrivateSubnetIds"))
    child("PipelineStack", CODEBUILD_ENABLED, UNREACHABLE_BRANCH_IS_DELIBERATE,
          PipelineRoleArn=_child_output("IamStack", "PipelineRoleArn"),
          ArtifactBucketName=_child_output("StorageStack", "ArtifactBucketName"),
          CodeBuildProjectName=only_if(CODEBUILD_ENABLED, _child_output("BuildStack", "CodeBuildProjectName")))

    forwarded = [
        ("VpcId", "NetworkStack", None),
        ("PublicSubnetIds", "NetworkStack", None),
        ("ArtifactBucketName", "StorageStack", None),
        ("ArtifactBucketArn", "StorageStack", None),
        ("CodeBuildRoleArn", "IamStack", None),
        ("PipelineRoleArn", "IamStack", None),
        ("CodeBuildProjectName", "BuildStack", CODEBUILD_ENABLED),
        ("PipelineName", "PipelineStack", CODEBUILD_ENABLED),
    ]
    for name, stack, condition in forwarded:
        options = {"Condition": condition} if condition else {}
        t.add_output(Output(name, Value=_child_output(stack, name), **options))
    return t
