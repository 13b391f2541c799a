"""Build child stack: the CodeBuild project for this Python repository, and its log group.

The project runs on the newest curated standard image (settings, default ``standard:8.0``) with a
buildspec for *this* project: the Python runtime, ``pip install -r requirements.txt``, build every
environment's templates, cfn-lint them, run pytest. There is no Node anywhere (the seed's fourth
failure). With NAT enabled the build runs in the VPC's private subnets.
"""

from __future__ import annotations

from troposphere import GetAtt, If, Output, Ref, Split, Template, codebuild, ec2, logs

from templates_src import naming
from templates_src.conditions import NAT_ENABLED, add_nat_condition
from templates_src.settings import Settings


# checkov's CloudFormation suppression: the one deliberate exception for the log group, with its reason.
DEFAULT_LOG_ENCRYPTION_IS_ENOUGH = {"checkov": {"skip": [{
    "id": "CKV_AWS_158",
    "comment": "CloudWatch Logs encrypts every log group at rest by default; a customer-managed KMS key "
               "would add a key, its policy and its monthly cost for build output that holds no secrets.",
}]}}


def buildspec(settings: Settings) -> str:
    """The buildspec, as YAML text (deterministic: no dumper, no key reordering)."""
    return "\n".join([
        "version: 0.2",
        "phases:",
        "  install:",
        "    runtime-versions:",
        f'      python: "{settings.build.python_version}"',
        "    commands:",
        "      - python -m pip install --upgrade pip",
        "      - pip install -r requirements.txt -r requirements-dev.txt",
        # checkov pins its own boto3, so it lives in a virtualenv of its own (as in the Makefile).
        "      - python -m venv .venv-scan && .venv-scan/bin/pip install -r requirements-scan.txt",
        "  build:",
        "    commands:",
        "      - python -m templates_src --all --lint",
        # LocalStack-backed tests need the emulator; the pipeline runs the unit tests.
        '      - python -m pytest -m "not localstack" --junitxml=reports/pytest.xml',
        "reports:",
        "  pytest:",
        "    files:",
        "      - reports/pytest.xml",
        "    file-format: JUNITXML",
        "artifacts:",
        "  base-directory: build",
        "  files:",
        "    - '**/*'",
        "",
    ])


def template(settings: Settings) -> Template:
    t = Template(Description=f"{settings.project} CodeBuild project ({settings.environment})")
    naming.add_identity_parameters(t, settings)
    role_arn = t.add_parameter(naming.string_parameter("CodeBuildRoleArn", "CodeBuild service role."))
    add_nat_condition(t, "Run builds in the VPC's private subnets.")
    vpc_id = t.add_parameter(naming.string_parameter("VpcId", "The VPC (used with NAT)."))
    private_subnets = t.add_parameter(naming.string_parameter(
        "PrivateSubnetIds", "Private subnets, comma-separated ('' without NAT)."))

    # Build logs are diagnostics, not the platform's data: they go with the stack, so a
    # re-create never trips over a retained group of the same name.
    log_group = t.add_resource(logs.LogGroup(
        "BuildLogGroup",
        Metadata=DEFAULT_LOG_ENCRYPTION_IS_ENOUGH,
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
        LogGroupName=naming.build_log_group_name(),
        RetentionInDays=settings.build.log_retention_days,
        Tags=naming.tags(),
    ))
    security_group = t.add_resource(ec2.SecurityGroup(
        "BuildSecurityGroup",
        Condition=NAT_ENABLED,
        GroupDescription="CodeBuild in private subnets: outbound only",
        VpcId=Ref(vpc_id),
        SecurityGroupEgress=[ec2.SecurityGroupRule(
            IpProtocol="-1", CidrIp="0.0.0.0/0", Description="Builds download packages through NAT",
        )],
        Tags=naming.tags(("Name", naming.named("codebuild"))),
    ))
    project = t.add_resource(codebuild.Project(
        "BuildProject",
        Name=naming.codebuild_project_name(),
        Description=f"Builds, lints and tests {settings.github.owner}/{settings.github.repo}",
        ServiceRole=Ref(role_arn),
        Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=buildspec(settings)),
        Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType=settings.build.compute_type,
            Image=settings.build.image,
            ImagePullCredentialsType="CODEBUILD",
            EnvironmentVariables=[
                codebuild.EnvironmentVariable(Name="ENVIRONMENT", Type="PLAINTEXT", Value=Ref("Environment")),
            ],
        ),
        LogsConfig=codebuild.LogsConfig(CloudWatchLogs=codebuild.CloudWatchLogs(
            Status="ENABLED", GroupName=Ref(log_group),
        )),
        TimeoutInMinutes=settings.build.timeout_minutes,
        VpcConfig=If(NAT_ENABLED, codebuild.VpcConfig(
            VpcId=Ref(vpc_id),
            Subnets=Split(",", Ref(private_subnets)),
            SecurityGroupIds=[GetAtt(security_group, "GroupId")],
        ), Ref("AWS::NoValue")),
        Tags=naming.tags(),
    ))

    t.add_output(Output("CodeBuildProjectName", Description="The CodeBuild project.", Value=Ref(project)))
    t.add_output(Output("CodeBuildProjectArn", Description="The CodeBuild project's ARN.",
                        Value=GetAtt(project, "Arn")))
    return t
