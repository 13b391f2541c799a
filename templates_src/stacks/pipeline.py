"""Pipeline child stack: CodePipeline (V2) from GitHub to the CodeBuild project.

The source is a CodeConnections (CodeStar) connection by default. With
``github.source = "secretsmanager-token"`` it is the GitHub action, whose token CloudFormation
resolves from Secrets Manager at deploy time (a ``{{resolve:secretsmanager:...}}`` dynamic
reference): the token is never a parameter, a default or an output (the seed's second failure).
"""

from __future__ import annotations

from troposphere import GetAtt, Output, Ref, Template, codepipeline

from templates_src import naming
from templates_src.settings import GitHubSettings, Settings

SOURCE_OUTPUT = "SourceOutput"
BUILD_OUTPUT = "BuildOutput"


def secret_reference(secret_name: str, key: str) -> str:
    """A dynamic reference: CloudFormation fetches the value; the template only names it."""
    return f"{{{{resolve:secretsmanager:{secret_name}:SecretString:{key}}}}}"


def source_action(github: GitHubSettings) -> codepipeline.Actions:
    if github.source == "codestar-connection":
        return codepipeline.Actions(
            Name="GitHub",
            ActionTypeId=codepipeline.ActionTypeId(
                Category="Source", Owner="AWS", Provider="CodeStarSourceConnection", Version="1",
            ),
            Configuration={
                "ConnectionArn": github.connection_arn,
                "FullRepositoryId": f"{github.owner}/{github.repo}",
                "BranchName": github.branch,
                "DetectChanges": "true",
                "OutputArtifactFormat": "CODE_ZIP",
            },
            OutputArtifacts=[codepipeline.OutputArtifacts(Name=SOURCE_OUTPUT)],
            RunOrder=1,
        )
    return codepipeline.Actions(
        Name="GitHub",
        ActionTypeId=codepipeline.ActionTypeId(
            Category="Source", Owner="ThirdParty", Provider="GitHub", Version="1",
        ),
        Configuration={
            "Owner": github.owner,
            "Repo": github.repo,
            "Branch": github.branch,
            "OAuthToken": secret_reference(github.token_secret_name, "token"),
            # A webhook (below) announces pushes; polling GitHub is deprecated.
            "PollForSourceChanges": "false",
        },
        OutputArtifacts=[codepipeline.OutputArtifacts(Name=SOURCE_OUTPUT)],
        RunOrder=1,
    )


def template(settings: Settings) -> Template:
    github = settings.github
    t = Template(Description=f"{settings.project} CodePipeline from GitHub ({settings.environment})")
    naming.add_identity_parameters(t, settings)
    role_arn = t.add_parameter(naming.string_parameter("PipelineRoleArn", "CodePipeline service role."))
    bucket = t.add_parameter(naming.string_parameter("ArtifactBucketName", "The artifact bucket."))
    project = t.add_parameter(naming.string_parameter("CodeBuildProjectName", "The CodeBuild project."))

    pipeline = t.add_resource(codepipeline.Pipeline(
        "Pipeline",
        Name=naming.pipeline_name(),
        PipelineType="V2",
        ExecutionMode="QUEUED",
        RoleArn=Ref(role_arn),
        ArtifactStore=codepipeline.ArtifactStore(Type="S3", Location=Ref(bucket)),
        Stages=[
            codepipeline.Stages(Name="Source", Actions=[source_action(github)]),
            codepipeline.Stages(Name="Build", Actions=[codepipeline.Actions(
                Name="BuildLintTest",
                ActionTypeId=codepipeline.ActionTypeId(
                    Category="Build", Owner="AWS", Provider="CodeBuild", Version="1",
                ),
                Configuration={"ProjectName": Ref(project)},
                InputArtifacts=[codepipeline.InputArtifacts(Name=SOURCE_OUTPUT)],
                OutputArtifacts=[codepipeline.OutputArtifacts(Name=BUILD_OUTPUT)],
                RunOrder=1,
            )]),
        ],
        Tags=naming.tags(),
    ))
    if github.source == "secretsmanager-token":
        t.add_resource(codepipeline.Webhook(
            "GitHubWebhook",
            Authentication="GITHUB_HMAC",
            AuthenticationConfiguration=codepipeline.WebhookAuthConfiguration(
                SecretToken=secret_reference(github.token_secret_name, "webhook_secret"),
            ),
            Filters=[codepipeline.WebhookFilterRule(
                JsonPath="$.ref", MatchEquals="refs/heads/{Branch}",
            )],
            TargetPipeline=Ref(pipeline),
            TargetAction="GitHub",
            TargetPipelineVersion=GetAtt(pipeline, "Version"),
            RegisterWithThirdParty=True,
        ))

    t.add_output(Output("PipelineName", Description="The pipeline.", Value=Ref(pipeline)))
    return t
