"""templates_src/stacks/storage.py: the artifact bucket — private, versioned, encrypted, TLS-only, named per
account, region and environment, kept or deleted as the settings say."""

from __future__ import annotations

import dataclasses

import pytest

from templates_src import settings
from templates_src.stacks import storage


def rendered(env: str = "dev", **storage_changes: object) -> dict:
    loaded = settings.load(env)
    if storage_changes:
        loaded = dataclasses.replace(loaded, storage=dataclasses.replace(loaded.storage, **storage_changes))
    return storage.template(loaded).to_dict()


def bucket(env: str = "dev", **storage_changes: object) -> dict:
    return rendered(env, **storage_changes)["Resources"]["ArtifactBucket"]


def test_resources_are_the_bucket_and_its_policy():
    resources = rendered()["Resources"]

    assert {name: resource["Type"] for name, resource in resources.items()} == {
        "ArtifactBucket": "AWS::S3::Bucket",
        "ArtifactBucketPolicy": "AWS::S3::BucketPolicy",
    }


def test_versioning_and_default_encryption():
    properties = bucket()["Properties"]

    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["BucketEncryption"] == {"ServerSideEncryptionConfiguration": [{
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": True,
    }]}


def test_all_four_public_access_blocks_and_bucket_owner_enforced():
    properties = bucket()["Properties"]

    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize(("env", "days"), [("local", 7), ("dev", 30), ("prod", 90)])
def test_noncurrent_versions_expire_after_the_configured_days(env, days):
    rules = bucket(env)["Properties"]["LifecycleConfiguration"]["Rules"]

    assert rules == [{
        "Id": "ExpireNoncurrentVersions",
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }]


def test_lifecycle_follows_a_changed_setting():
    rules = bucket(noncurrent_version_expiration_days=365)["Properties"]["LifecycleConfiguration"]["Rules"]

    assert rules[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 365}


@pytest.mark.parametrize(("env", "policy"), [("local", "Delete"), ("dev", "Retain"), ("prod", "Retain")])
def test_deletion_and_replacement_policies_follow_the_settings(env, policy):
    resource = bucket(env)

    assert resource["DeletionPolicy"] == policy
    assert resource["UpdateReplacePolicy"] == policy


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy_is_data_not_environment(policy):
    """Sceptre style: the template applies what dev's settings say, whatever the environment's name."""
    resource = bucket("dev", deletion_policy=policy)

    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == (policy, policy)


def test_bucket_name_is_unique_per_account_region_and_environment():
    name = bucket()["Properties"]["BucketName"]

    assert name == {"Fn::Sub": "${ProjectName}-${Environment}-artifacts-${AWS::AccountId}-${AWS::Region}"}
    for part in ("${AWS::AccountId}", "${AWS::Region}", "${Environment}"):
        assert part in name["Fn::Sub"]


def test_bucket_policy_denies_every_request_without_tls():
    policy = rendered()["Resources"]["ArtifactBucketPolicy"]["Properties"]
    bucket_arn = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}

    assert policy["Bucket"] == {"Ref": "ArtifactBucket"}
    assert policy["PolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:*"],
            "Resource": [bucket_arn, {"Fn::Sub": ["${Arn}/*", {"Arn": bucket_arn}]}],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def test_outputs_are_bucket_name_and_arn():
    outputs = rendered()["Outputs"]

    assert {name: output["Value"] for name, output in outputs.items()} == {
        "ArtifactBucketName": {"Ref": "ArtifactBucket"},
        "ArtifactBucketArn": {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
    }


def test_identity_parameters_are_pinned_to_the_build():
    parameters = rendered("prod")["Parameters"]

    assert parameters == {
        "ProjectName": {"Type": "String", "AllowedValues": ["cicd-platform"],
                        "Description": "Project name; part of every physical name."},
        "Environment": {"Type": "String", "AllowedValues": ["prod"],
                        "Description": "Environment these templates were built for (config/<env>.toml)."},
    }
