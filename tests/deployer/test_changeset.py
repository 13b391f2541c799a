"""deployer/changeset.py: the data guard. Which changes lose data (``data_at_risk``), read from a change set
modelled on AWS's documented DescribeChangeSet replies (nested change sets with ``Details``), and from
the templates where a nested stack's change comes without one (LocalStack 4.13.1)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deployer import changeset
from deployer.changeset import Change
from deployer.errors import DeployFailed
from deployer.manifest import Build

STORAGE_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/app-dev-StorageStack-1XYZ/33333333-0000"
ROOT_CS = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/deploy-1/aaaa"
NESTED_CS = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/app-dev-StorageStack-1XYZ-deploy-1/bbbb"
BUCKET_NAME = {"Fn::Sub": "${ProjectName}-${Environment}-artifacts-${AWS::AccountId}-${AWS::Region}"}


def bucket(name=None, policy="Delete", versioning="Enabled") -> dict:
    return {"Type": "AWS::S3::Bucket", "DeletionPolicy": policy, "UpdateReplacePolicy": policy,
            "Properties": {"BucketName": name or BUCKET_NAME, "VersioningConfiguration": {"Status": versioning}}}


STORAGE = {"Resources": {
    "ArtifactBucket": bucket(),
    "ArtifactBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "ArtifactBucket"}}},
}}
NETWORK = {"Resources": {
    "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
    "FlowLogs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "Properties": {}},
    "Topic": {"Type": "AWS::SNS::Topic", "DeletionPolicy": "Retain", "Properties": {"TopicName": "alerts"}},
}}


def make_build(folder: Path, storage: dict = STORAGE, network: dict = NETWORK) -> Build:
    """A build folder with two children, as manifest.load would read it."""
    children = {"StorageStack": "storage.json", "NetworkStack": "network.json"}
    for logical_id, template in (("StorageStack", storage), ("NetworkStack", network)):
        (folder / children[logical_id]).write_text(json.dumps(template), encoding="utf-8")
    root = {"Parameters": {"ProjectName": {"Type": "String"}, "Environment": {"Type": "String"}},
            "Resources": {logical_id: {"Type": "AWS::CloudFormation::Stack", "Properties": {
                "TemplateURL": file_name, "Parameters": {"ProjectName": {"Ref": "ProjectName"},
                                                         "Environment": {"Ref": "Environment"}}}}
                          for logical_id, file_name in children.items()}}
    return Build(folder=folder, project="app", environment="dev", region="us-east-1", stack_name="app-dev",
                 termination_protection=False, bucket_deletion_policy="Delete",
                 default_parameters={"Environment": "dev"}, github={}, root=root, children=children)


@pytest.fixture
def build(tmp_path):
    return make_build(tmp_path)


def change(action, logical_id, resource_type, replacement="", forced=(), path="root › StorageStack", **more):
    return Change(path, action, logical_id, resource_type, replacement, tuple(forced), **more)


# --- data_at_risk --------------------------------------------------------------------------------

@pytest.mark.parametrize("the_change, message", [
    (change("Modify", "ArtifactBucket", "AWS::S3::Bucket", "True", ["BucketName"]),
     "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REPLACED "
     "(changing BucketName forces a new resource)"),
    (change("Modify", "ArtifactBucket", "AWS::S3::Bucket", "Conditional", ["BucketName"]),
     "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be possibly REPLACED "
     "(changing BucketName forces a new resource)"),
    (change("Modify", "ArtifactBucket", "AWS::S3::Bucket", "True"),
     "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REPLACED "
     "(changing a property forces a new resource)"),
    (change("Remove", "ArtifactBucket", "AWS::S3::Bucket"),
     "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REMOVED"),
    (change("Remove", "FlowLogs", "AWS::Logs::LogGroup", path="root › NetworkStack"),
     "root › NetworkStack › FlowLogs (AWS::Logs::LogGroup) would be REMOVED"),
    # not a data type, but its DeletionPolicy is Retain in the new templates ...
    (change("Modify", "Topic", "AWS::SNS::Topic", "True", ["TopicName"], path="root › NetworkStack"),
     "root › NetworkStack › Topic (AWS::SNS::Topic) would be REPLACED (changing TopicName forces a new resource)"),
    # ... or in the deployed one, for a resource the new templates no longer have
    (change("Remove", "OldQueue", "AWS::SQS::Queue", path="root › NetworkStack", retained=True),
     "root › NetworkStack › OldQueue (AWS::SQS::Queue) would be REMOVED"),
])
def test_replacing_or_removing_a_stateful_resource_is_at_risk(build, the_change, message):
    assert changeset.data_at_risk(build, [the_change]) == [message]


@pytest.mark.parametrize("the_change", [
    change("Modify", "ArtifactBucket", "AWS::S3::Bucket", "False"),  # in place: versioning, tags, policy
    change("Add", "SecondBucket", "AWS::S3::Bucket"),
    change("Modify", "Vpc", "AWS::EC2::VPC", "True", ["CidrBlock"], path="root › NetworkStack"),
    change("Remove", "PublicSubnetB", "AWS::EC2::Subnet", path="root › NetworkStack"),
    change("Modify", "StorageStack", "AWS::CloudFormation::Stack", "False", path="root"),
])
def test_in_place_changes_and_stateless_resources_are_not_at_risk(build, the_change):
    assert changeset.data_at_risk(build, [the_change]) == []


# --- reading change sets (AWS's documented shape) ------------------------------------------------

def described(change_set_id: str, changes: list[dict], **more) -> dict:
    return {"ChangeSetId": change_set_id, "ChangeSetName": "deploy-1", "StackName": "app-dev",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/app-dev/1111",
            "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE", "Changes": changes, **more}


def resource_change(**fields) -> dict:
    return {"Type": "Resource", "ResourceChange": fields}


# DescribeChangeSet of an update that renames the bucket, as AWS documents it: the root names the nested
# change set, which says Replacement True with the BucketName detail that requires recreation.
ROOT_CHANGES = [resource_change(Action="Modify", LogicalResourceId="StorageStack", PhysicalResourceId=STORAGE_ID,
                                ResourceType="AWS::CloudFormation::Stack", Replacement="False", Scope=["Properties"],
                                ChangeSetId=NESTED_CS)]
NESTED_CHANGES = [
    resource_change(Action="Modify", LogicalResourceId="ArtifactBucket", PhysicalResourceId="app-dev-artifacts-1",
                    ResourceType="AWS::S3::Bucket", Replacement="True", Scope=["Properties", "Tags"], Details=[
                        {"Target": {"Attribute": "Properties", "Name": "BucketName", "RequiresRecreation": "Always"},
                         "Evaluation": "Static", "ChangeSource": "DirectModification"},
                        {"Target": {"Attribute": "Tags", "RequiresRecreation": "Never"},
                         "Evaluation": "Static", "ChangeSource": "DirectModification"}]),
    resource_change(Action="Modify", LogicalResourceId="ArtifactBucketPolicy", ResourceType="AWS::S3::BucketPolicy",
                    PhysicalResourceId="policy-1", Replacement="True", Details=[
                        {"Target": {"Attribute": "Properties", "Name": "Bucket", "RequiresRecreation": "Always"},
                         "Evaluation": "Dynamic", "ChangeSource": "ResourceReference",
                         "CausingEntity": "ArtifactBucket"}]),
]


def test_nested_change_sets_are_read_and_the_replacing_property_named(cfn, build):
    cfn.stubber.add_response("describe_change_set", described(ROOT_CS, ROOT_CHANGES, IncludeNestedStacks=True),
                             {"ChangeSetName": ROOT_CS})
    cfn.stubber.add_response("describe_change_set", described(NESTED_CS, NESTED_CHANGES[:1], NextToken="page-2"),
                             {"ChangeSetName": NESTED_CS})
    cfn.stubber.add_response("describe_change_set", described(NESTED_CS, NESTED_CHANGES[1:]),
                             {"ChangeSetName": NESTED_CS, "NextToken": "page-2"})
    changes = changeset.describe(cfn, ROOT_CS)
    assert [c.describe() for c in changes] == [
        "  Modify  root › StorageStack (AWS::CloudFormation::Stack)",
        "  Modify  root › StorageStack › ArtifactBucket (AWS::S3::Bucket)  (REPLACEMENT)",
        "  Modify  root › StorageStack › ArtifactBucketPolicy (AWS::S3::BucketPolicy)  (REPLACEMENT)",
    ]
    assert changes[0].nested_change_set == NESTED_CS
    assert changeset.data_at_risk(build, changes) == [
        "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REPLACED "
        "(changing BucketName forces a new resource)"]
    # described by CloudFormation: nothing to work out from the templates, no call made
    assert changeset.undescribed_nested_changes(cfn, build, changes, {}) == []


def test_create_waits_for_the_change_set_and_reads_it(cfn):
    cfn.stubber.add_response("create_change_set", {"Id": ROOT_CS, "StackId": STORAGE_ID})
    cfn.stubber.add_response("describe_change_set", described(ROOT_CS, [], Status="CREATE_PENDING"),
                             {"ChangeSetName": ROOT_CS})
    cfn.stubber.add_response("describe_change_set", described(ROOT_CS, ROOT_CHANGES[:1]), {"ChangeSetName": ROOT_CS})
    cfn.stubber.add_response("describe_change_set", described(ROOT_CS, ROOT_CHANGES[:1]), {"ChangeSetName": ROOT_CS})
    cfn.stubber.add_response("describe_change_set", described(NESTED_CS, NESTED_CHANGES[:1]),
                             {"ChangeSetName": NESTED_CS})
    slept = []
    created = changeset.create(cfn, "app-dev", "UPDATE", {"TemplateBody": "{}"}, {"Environment": "dev"}, {}, 0.5,
                               sleep=slept.append)
    assert not created.empty and slept == [0.5]
    assert [(c.logical_id, c.replacement) for c in created.changes] == [("StorageStack", "False"),
                                                                        ("ArtifactBucket", "True")]


@pytest.mark.parametrize("reason", [
    "The submitted information didn't contain changes. Submit different information to create a change set.",
    "No updates are to be performed.",
])
def test_a_change_set_without_changes_is_empty_not_an_error(cfn, reason):
    cfn.stubber.add_response("create_change_set", {"Id": ROOT_CS, "StackId": STORAGE_ID})
    cfn.stubber.add_response("describe_change_set", described(ROOT_CS, [], Status="FAILED", StatusReason=reason),
                             {"ChangeSetName": ROOT_CS})
    created = changeset.create(cfn, "app-dev", "UPDATE", {"TemplateBody": "{}"}, {}, {}, 0)
    assert created.empty and created.changes == ()


def test_a_failed_change_set_says_why(cfn):
    cfn.stubber.add_response("create_change_set", {"Id": ROOT_CS, "StackId": STORAGE_ID})
    cfn.stubber.add_response("describe_change_set", described(
        ROOT_CS, [], Status="FAILED", StatusReason="Template error: instance of Fn::GetAtt references undefined "
                                                   "resource Missing"), {"ChangeSetName": ROOT_CS})
    with pytest.raises(DeployFailed, match=r"^change set failed: Template error: instance of Fn::GetAtt references "
                                           r"undefined resource Missing$"):
        changeset.create(cfn, "app-dev", "UPDATE", {"TemplateBody": "{}"}, {}, {}, 0)


# --- no nested change set (LocalStack 4.13.1): worked out from the templates --------------------------

# What LocalStack's DescribeChangeSet says for any change inside StorageStack: this, and nothing more.
LOCALSTACK_MODIFY = change("Modify", "StorageStack", "AWS::CloudFormation::Stack", "False", path="root",
                           physical_id=STORAGE_ID)
T0 = datetime(2026, 12, 4, tzinfo=timezone.utc)


def deployed(cfn, template: dict, parameters: dict[str, str] | None = None) -> None:
    """The stubbed replies for the nested stack's deployed template (a parsed body, as boto3 returns
    JSON) and, for a Modify, its current parameters."""
    cfn.stubber.add_response("get_template", {"TemplateBody": json.dumps(template)},
                             {"StackName": STORAGE_ID, "TemplateStage": "Original"})
    if parameters is not None:
        cfn.stubber.add_response("describe_stacks", {"Stacks": [{
            "StackName": "app-dev-StorageStack-1XYZ", "StackId": STORAGE_ID, "StackStatus": "CREATE_COMPLETE",
            "CreationTime": T0,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]}]},
            {"StackName": STORAGE_ID})


CURRENT = {"ProjectName": "app", "Environment": "dev"}


def test_a_changed_bucket_name_is_a_replacement_even_without_a_nested_change_set(cfn, tmp_path):
    renamed = {"Fn::Sub": "${ProjectName}-${Environment}-artifacts2-${AWS::AccountId}-${AWS::Region}"}
    new = make_build(tmp_path, storage={"Resources": {**STORAGE["Resources"], "ArtifactBucket": bucket(renamed)}})
    deployed(cfn, STORAGE, CURRENT)
    derived = changeset.undescribed_nested_changes(cfn, new, [LOCALSTACK_MODIFY], CURRENT)
    assert [c.describe() for c in derived] == [
        "  Modify  root › StorageStack › ArtifactBucket (AWS::S3::Bucket)  (REPLACEMENT)"]
    assert derived[0].source == changeset.FROM_TEMPLATES
    assert changeset.data_at_risk(new, derived) == [
        "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REPLACED "
        "(changing BucketName forces a new resource)"]


def test_a_renamed_logical_id_removes_the_bucket(cfn, tmp_path):
    moved = {"ArtifactStore": bucket(), "ArtifactBucketPolicy": {
        "Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "ArtifactStore"}}}}
    new = make_build(tmp_path, storage={"Resources": moved})
    deployed(cfn, STORAGE, CURRENT)
    derived = changeset.undescribed_nested_changes(cfn, new, [LOCALSTACK_MODIFY], CURRENT)
    assert [(c.action, c.logical_id) for c in derived] == [
        ("Remove", "ArtifactBucket"), ("Modify", "ArtifactBucketPolicy"), ("Add", "ArtifactStore")]
    assert changeset.data_at_risk(new, derived) == [
        "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REMOVED"]


def test_an_in_place_change_is_no_replacement(cfn, tmp_path):
    new = make_build(tmp_path, storage={"Resources": {**STORAGE["Resources"],
                                                      "ArtifactBucket": bucket(versioning="Suspended")}})
    deployed(cfn, STORAGE, CURRENT)
    derived = changeset.undescribed_nested_changes(cfn, new, [LOCALSTACK_MODIFY], CURRENT)
    assert [(c.action, c.logical_id, c.replacement) for c in derived] == [("Modify", "ArtifactBucket", "")]
    assert changeset.data_at_risk(new, derived) == []


def test_a_parameter_the_bucket_name_reads_may_replace_it(cfn, build):
    deployed(cfn, STORAGE, {"ProjectName": "old-app", "Environment": "dev"})
    derived = changeset.undescribed_nested_changes(cfn, build, [LOCALSTACK_MODIFY], CURRENT)
    assert [(c.logical_id, c.replacement, c.forced_by) for c in derived] == [
        ("ArtifactBucket", "Conditional", ("BucketName",))]


def test_removing_a_nested_stack_removes_what_it_holds(cfn, build):
    removed = change("Remove", "StorageStack", "AWS::CloudFormation::Stack", path="root", physical_id=STORAGE_ID)
    retained = {"Resources": {"ArtifactBucket": bucket(policy="Retain"),
                              "Queue": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain"}}}
    deployed(cfn, retained)
    derived = changeset.undescribed_nested_changes(cfn, build, [removed], CURRENT)
    assert changeset.data_at_risk(build, derived) == [
        "root › StorageStack › ArtifactBucket (AWS::S3::Bucket) would be REMOVED",
        "root › StorageStack › Queue (AWS::SQS::Queue) would be REMOVED"]


@pytest.mark.parametrize("before, after, certain", [
    ("a-bucket", "b-bucket", True),
    ({"Fn::Sub": "${P}-artifacts"}, {"Fn::Sub": "${P}-artifacts2"}, True),
    ({"Fn::Sub": "${P}-artifacts"}, {"Fn::Sub": "${Q}-artifacts"}, False),  # P and Q may hold the same
    ({"Ref": "Name"}, "literal", False),
    (None, "named-now", True),
])
def test_values_certainly_differ_only_when_no_resolution_can_make_them_equal(before, after, certain):
    assert changeset._certainly_differ(before, after) is certain
