"""Names, tags and the parameters every child shares: one place per concept.

Physical names are derived from the ``ProjectName`` and ``Environment`` parameters (plus the
account and region where a name is global), so two environments, accounts or regions never
collide. The IAM stack and the build stack both need the CodeBuild project's name before it
exists; they agree through these helpers instead of passing it around.
"""

from __future__ import annotations

from troposphere import Parameter, Ref, Sub, Tags, Template

from templates_src.settings import Settings

PROJECT_PARAMETER = "ProjectName"
ENVIRONMENT_PARAMETER = "Environment"
FLAG_VALUES = ["true", "false"]


def add_identity_parameters(template: Template, settings: Settings,
                            with_defaults: bool = False) -> tuple[Parameter, Parameter]:
    """Declare ``ProjectName`` and ``Environment``, pinned to this build's values.

    Children get no defaults, so cfn-lint (E3043) proves the root passes both to every child.
    """
    project = template.add_parameter(Parameter(
        PROJECT_PARAMETER, Type="String", AllowedValues=[settings.project],
        Description="Project name; part of every physical name.",
        **({"Default": settings.project} if with_defaults else {}),
    ))
    environment = template.add_parameter(Parameter(
        ENVIRONMENT_PARAMETER, Type="String", AllowedValues=[settings.environment],
        Description="Environment these templates were built for (config/<env>.toml).",
        **({"Default": settings.environment} if with_defaults else {}),
    ))
    return project, environment


def flag_parameter(name: str, description: str, default: bool | None = None) -> Parameter:
    """A "true"/"false" toggle parameter (CloudFormation has no boolean type)."""
    options = {"Default": "true" if default else "false"} if default is not None else {}
    return Parameter(name, Type="String", AllowedValues=FLAG_VALUES, Description=description, **options)


def prefix() -> Sub:
    """``<project>-<env>``: the stem of names unique per account and region."""
    return Sub("${ProjectName}-${Environment}")


def named(suffix: str) -> Sub:
    return Sub(f"${{ProjectName}}-${{Environment}}-{suffix}")


def artifact_bucket_name() -> Sub:
    # S3 names are global: account and region make them unique everywhere.
    return Sub("${ProjectName}-${Environment}-artifacts-${AWS::AccountId}-${AWS::Region}")


def role_name(service: str) -> Sub:
    # IAM is global to the account: the region keeps two regions' roles apart.
    return Sub(f"${{ProjectName}}-${{Environment}}-{service}-${{AWS::Region}}")


def codebuild_project_name() -> Sub:
    return prefix()


def codebuild_project_arn() -> Sub:
    return Sub("arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}"
               ":project/${ProjectName}-${Environment}")


def codebuild_report_group_arn() -> Sub:
    # CodeBuild names a buildspec's report group "<project name>-<report name>".
    return Sub("arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}"
               ":report-group/${ProjectName}-${Environment}-pytest")


def build_log_group_name() -> Sub:
    # CodeBuild's default group for the project: the build stack creates it with a retention.
    return Sub("/aws/codebuild/${ProjectName}-${Environment}")


def build_log_group_arn() -> Sub:
    return Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
               ":log-group:/aws/codebuild/${ProjectName}-${Environment}")


def pipeline_name() -> Sub:
    return prefix()


def pipeline_arn() -> Sub:
    return Sub("arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}"
               ":${ProjectName}-${Environment}")


def tags(*extra: tuple[str, object]) -> Tags:
    """Tags for every taggable resource; ``Name`` first when given."""
    pairs = dict(extra)
    pairs["Project"] = Ref(PROJECT_PARAMETER)
    pairs["Environment"] = Ref(ENVIRONMENT_PARAMETER)
    return Tags(**pairs)


def string_parameter(name: str, description: str) -> Parameter:
    """A value another child stack produces and the root passes in."""
    return Parameter(name, Type="String", Description=description)
