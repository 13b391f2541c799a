"""IAM policy statements, written with awacs: one builder per concern, each scoped to exact ARNs.

No Allow statement uses a wildcard action. ``Resource: "*"`` appears only where AWS offers no
resource-level permission for the action, and the builder says so.
"""

from __future__ import annotations

from awacs import codebuild, codeconnections, codestar_connections, ec2, logs, s3, sts
from awacs.aws import (
    Allow, Condition, Deny, Principal, PolicyDocument, Statement, StringEquals, Bool,
)
from troposphere import AWSHelperFn, Ref, Sub

from templates_src import naming

POLICY_VERSION = "2012-10-17"


def service_trust_policy(service: str) -> PolicyDocument:
    """Only ``service`` acting for this account may assume the role (confused-deputy guard)."""
    return PolicyDocument(
        Version=POLICY_VERSION,
        Statement=[Statement(
            Effect=Allow,
            Principal=Principal("Service", [service]),
            Action=[sts.AssumeRole],
            Condition=Condition(StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")})),
        )],
    )


def tls_only_bucket_policy(bucket_arn: AWSHelperFn) -> PolicyDocument:
    """Deny every request to the bucket and its objects that does not use TLS."""
    return PolicyDocument(
        Version=POLICY_VERSION,
        Statement=[Statement(
            Sid="DenyInsecureTransport",
            Effect=Deny,
            Principal=Principal("*"),
            Action=[s3.Action("*")],
            Resource=[bucket_arn, Sub("${Arn}/*", Arn=bucket_arn)],
            Condition=Condition(Bool({"aws:SecureTransport": "false"})),
        )],
    )


def artifact_read_write(bucket_arn: AWSHelperFn) -> list[Statement]:
    """Read and write pipeline artifacts in the artifact bucket, nothing else in S3."""
    return [
        Statement(
            Sid="ArtifactObjects",
            Effect=Allow,
            Action=[s3.GetObject, s3.GetObjectVersion, s3.PutObject],
            Resource=[Sub("${Arn}/*", Arn=bucket_arn)],
        ),
        Statement(
            Sid="ArtifactBucket",
            Effect=Allow,
            Action=[s3.GetBucketLocation, s3.GetBucketVersioning, s3.ListBucket],
            Resource=[bucket_arn],
        ),
    ]


def build_logs() -> Statement:
    log_group = naming.build_log_group_arn()
    return Statement(
        Sid="BuildLogs",
        Effect=Allow,
        Action=[logs.CreateLogStream, logs.PutLogEvents],
        Resource=[log_group, Sub("${Group}:log-stream:*", Group=log_group)],
    )


def test_reports() -> Statement:
    return Statement(
        Sid="TestReports",
        Effect=Allow,
        Action=[codebuild.CreateReportGroup, codebuild.CreateReport, codebuild.UpdateReport,
                codebuild.BatchPutTestCases],
        Resource=[naming.codebuild_report_group_arn()],
    )


def vpc_network_interfaces() -> list[Statement]:
    """What CodeBuild needs to place a build in the VPC's private subnets."""
    return [
        Statement(
            Sid="DescribeNetwork",
            Effect=Allow,
            # EC2 Describe* calls and CreateNetworkInterface/DeleteNetworkInterface as CodeBuild
            # issues them support no resource-level scoping (AWS CodeBuild user guide, "Allow
            # CodeBuild access to AWS services required to create a VPC network interface").
            Action=[ec2.CreateNetworkInterface, ec2.DeleteNetworkInterface, ec2.DescribeDhcpOptions,
                    ec2.DescribeNetworkInterfaces, ec2.DescribeSecurityGroups, ec2.DescribeSubnets,
                    ec2.DescribeVpcs],
            Resource=["*"],
        ),
        Statement(
            Sid="AttachNetworkInterface",
            Effect=Allow,
            Action=[ec2.CreateNetworkInterfacePermission],
            Resource=[Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*")],
            Condition=Condition(StringEquals({"ec2:AuthorizedService": "codebuild.amazonaws.com"})),
        ),
    ]


def start_build() -> Statement:
    return Statement(
        Sid="RunBuild",
        Effect=Allow,
        Action=[codebuild.BatchGetBuilds, codebuild.StartBuild],
        Resource=[naming.codebuild_project_arn()],
    )


def use_connection(connection_arn: str) -> Statement:
    # Connections created before the 2024 rename have "codestar-connections" ARNs; the action's
    # service prefix must match the ARN's (cfn-lint I3510 checks the pairing).
    service = codeconnections if ":codeconnections:" in connection_arn else codestar_connections
    return Statement(
        Sid="GitHubConnection",
        Effect=Allow,
        Action=[service.UseConnection],
        Resource=[connection_arn],
    )


def document(statements: list[Statement]) -> PolicyDocument:
    return PolicyDocument(Version=POLICY_VERSION, Statement=statements)
