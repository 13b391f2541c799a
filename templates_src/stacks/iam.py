"""IAM child stack: the CodeBuild and CodePipeline service roles, least privilege.

Each role trusts only its service acting for this account, and each permission names the exact
resources it touches: the artifact bucket, the build's log group and report group, the CodeBuild
project, the GitHub connection. Names of resources created later (the project, the log group)
come from ``naming`` so this stack can grant access before they exist.
"""

from __future__ import annotations

from troposphere import GetAtt, Output, Ref, Template, iam

from templates_src import naming, policies
from templates_src.conditions import NAT_ENABLED, add_nat_condition
from templates_src.settings import Settings


# checkov's CloudFormation suppression: the one deliberate exception for the VPC policy, with its reason.
CODEBUILD_VPC_ACCESS_NEEDS_WILDCARD = {"checkov": {"skip": [{
    "id": "CKV_AWS_111",
    "comment": "CodeBuild in a VPC needs ec2:CreateNetworkInterface, DeleteNetworkInterface and the Describe "
               "calls on '*' (CodeBuild user guide, VPC network interface policy); the scopable action, "
               "CreateNetworkInterfacePermission, is limited to this account's ENIs and to CodeBuild.",
}]}}


def template(settings: Settings) -> Template:
    t = Template(Description=f"{settings.project} IAM roles ({settings.environment}): CodeBuild and CodePipeline")
    naming.add_identity_parameters(t, settings)
    bucket_arn = Ref(t.add_parameter(naming.string_parameter("ArtifactBucketArn", "The artifact bucket's ARN.")))
    add_nat_condition(t, "Builds run in the VPC's private subnets.")

    build_role = t.add_resource(iam.Role(
        "CodeBuildServiceRole",
        RoleName=naming.role_name("codebuild"),
        Description="Runs the CodeBuild project: artifacts, logs, test reports.",
        AssumeRolePolicyDocument=policies.service_trust_policy("codebuild.amazonaws.com"),
        Policies=[iam.Policy(
            PolicyName="codebuild-least-privilege",
            PolicyDocument=policies.document([
                *policies.artifact_read_write(bucket_arn),
                policies.build_logs(),
                policies.test_reports(),
            ]),
        )],
        Tags=naming.tags(),
    ))
    # A separate policy so it exists only with NAT, when builds run inside the VPC.
    t.add_resource(iam.PolicyType(
        "CodeBuildVpcAccessPolicy",
        Condition=NAT_ENABLED,
        Metadata=CODEBUILD_VPC_ACCESS_NEEDS_WILDCARD,
        PolicyName="codebuild-vpc-network-interfaces",
        PolicyDocument=policies.document(policies.vpc_network_interfaces()),
        Roles=[Ref(build_role)],
    ))

    source_statements = []
    if settings.github.source == "codestar-connection":
        source_statements.append(policies.use_connection(settings.github.connection_arn))
    # With a token, CloudFormation resolves the secret at deploy time with the deployer's
    # credentials; the pipeline role itself never reads it, so it gets no secret access.
    pipeline_role = t.add_resource(iam.Role(
        "PipelineServiceRole",
        RoleName=naming.role_name("pipeline"),
        Description="Runs the pipeline: source from GitHub, artifacts, CodeBuild.",
        AssumeRolePolicyDocument=policies.service_trust_policy("codepipeline.amazonaws.com"),
        Policies=[iam.Policy(
            PolicyName="codepipeline-least-privilege",
            PolicyDocument=policies.document([
                *policies.artifact_read_write(bucket_arn),
                policies.start_build(),
                *source_statements,
            ]),
        )],
        Tags=naming.tags(),
    ))

    t.add_output(Output("CodeBuildRoleArn", Description="CodeBuild service role.",
                        Value=GetAtt(build_role, "Arn")))
    t.add_output(Output("PipelineRoleArn", Description="CodePipeline service role.",
                        Value=GetAtt(pipeline_role, "Arn")))
    return t
