"""Storage child stack: the pipeline's artifact bucket.

Versioned, encrypted, private (all four public-access blocks, bucket-owner-enforced ownership),
TLS-only, old versions expired after the configured days. Whether the bucket outlives the stack
is the settings' decision (``storage.deletion_policy``), applied to both deletion and replacement.
"""

from __future__ import annotations

from troposphere import GetAtt, Output, Ref, Template, s3

from templates_src import naming, policies
from templates_src.settings import Settings

# checkov's CloudFormation suppression: the one deliberate exception for the bucket, with its reason.
NO_ACCESS_LOGS_IS_DELIBERATE = {"checkov": {"skip": [{
    "id": "CKV_AWS_18",
    "comment": "Pipeline artifacts only, private and TLS-only; server access logs would need a second "
               "bucket (itself unlogged). CloudTrail records the bucket's management calls; enable its "
               "S3 data events if object-level auditing is ever required.",
}]}}


def template(settings: Settings) -> Template:
    t = Template(Description=f"{settings.project} artifact storage ({settings.environment})")
    naming.add_identity_parameters(t, settings)
    policy = settings.storage.deletion_policy
    bucket = t.add_resource(s3.Bucket(
        "ArtifactBucket",
        Metadata=NO_ACCESS_LOGS_IS_DELIBERATE,
        DeletionPolicy=policy,
        UpdateReplacePolicy=policy,
        BucketName=naming.artifact_bucket_name(),
        VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
        BucketEncryption=s3.BucketEncryption(ServerSideEncryptionConfiguration=[
            s3.ServerSideEncryptionRule(
                ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256"),
                BucketKeyEnabled=True,
            ),
        ]),
        PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True,
        ),
        OwnershipControls=s3.OwnershipControls(Rules=[
            s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced"),
        ]),
        LifecycleConfiguration=s3.LifecycleConfiguration(Rules=[
            s3.LifecycleRule(
                Id="ExpireNoncurrentVersions",
                Status="Enabled",
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(
                    NoncurrentDays=settings.storage.noncurrent_version_expiration_days,
                ),
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
            ),
        ]),
        Tags=naming.tags(),
    ))
    t.add_resource(s3.BucketPolicy(
        "ArtifactBucketPolicy",
        Bucket=Ref(bucket),
        PolicyDocument=policies.tls_only_bucket_policy(GetAtt(bucket, "Arn")),
    ))
    t.add_output(Output("ArtifactBucketName", Description="The artifact bucket.", Value=Ref(bucket)))
    t.add_output(Output("ArtifactBucketArn", Description="The artifact bucket's ARN.", Value=GetAtt(bucket, "Arn")))
    return t
