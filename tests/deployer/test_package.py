"""deployer/package.py: children uploaded once under content keys, the root pointed at URLs the target fetches."""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from deployer import manifest, package
from deployer.errors import UsageError
from deployer.target import Target

BUILT = Path(__file__).resolve().parents[2] / "build"
STACK_TYPE = "AWS::CloudFormation::Stack"


@pytest.fixture(scope="module")
def local() -> manifest.Build:
    return manifest.load("local", BUILT)


def a_target(region: str, endpoint_url: str | None, is_localstack: bool) -> Target:
    return Target(session=boto3.Session(region_name=region), region=region, endpoint_url=endpoint_url,
                  is_localstack=is_localstack)


@pytest.mark.parametrize(("target", "url"), [
    (a_target("eu-west-1", None, False), "https://my-bucket.s3.eu-west-1.amazonaws.com/p/e/k.json"),
    (a_target("us-east-1", None, False), "https://my-bucket.s3.us-east-1.amazonaws.com/p/e/k.json"),
    (a_target("cn-north-1", None, False), "https://my-bucket.s3.cn-north-1.amazonaws.com.cn/p/e/k.json"),
    # API calls through a VPC endpoint: CloudFormation still fetches templates from S3 itself.
    (a_target("eu-west-1", "https://vpce-0abc.cloudformation.eu-west-1.vpce.amazonaws.com", False),
     "https://my-bucket.s3.eu-west-1.amazonaws.com/p/e/k.json"),
    (a_target("us-east-1", "http://127.0.0.1:4566", True), "http://127.0.0.1:4566/my-bucket/p/e/k.json"),
    (a_target("eu-west-1", "http://127.0.0.1:45123/", True), "http://127.0.0.1:45123/my-bucket/p/e/k.json"),
    (a_target("us-east-1", "https://localhost.localstack.cloud:4566", True),
     "https://localhost.localstack.cloud:4566/my-bucket/p/e/k.json"),
])
def test_template_url_is_virtual_hosted_on_aws_and_path_style_on_the_emulator(target, url):
    assert package.template_url(target, "my-bucket", "p/e/k.json") == url


def test_template_bucket_is_named_by_account_and_region():
    assert package.template_bucket_name("123456789012", "eu-west-1") == "cfn-templates-123456789012-eu-west-1"


def test_content_key_changes_exactly_when_the_content_does(local):
    body = (local.folder / "storage.json").read_bytes()
    key = package.content_key(local, "storage.json", body)

    assert key.startswith("cicd-platform/local/") and key.endswith("-storage.json")
    assert package.content_key(local, "storage.json", bytes(body)) == key
    assert package.content_key(local, "storage.json", body + b"\n") != key
    assert package.content_key(local, "storage.json", body.replace(b"Delete", b"Retain", 1)) != key


def _differences(a, b, path=()):
    """The paths where two JSON documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(a.keys() | b.keys()) for p in _differences(a.get(k), b.get(k), (*path, k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _differences(x, y, (*path, i))]
    return [] if a == b else [path]


def test_rewrite_replaces_every_nested_template_url_and_nothing_else(local):
    original = json.loads(json.dumps(local.root))
    urls = {name: f"https://b.s3.us-east-1.amazonaws.com/{name}" for name in local.children.values()}

    packaged = package.rewrite_template_urls(local.root, urls)

    nested = sorted(name for name, r in local.root["Resources"].items() if r["Type"] == STACK_TYPE)
    assert nested == sorted(local.children)
    assert _differences(local.root, packaged) == [
        ("Resources", name, "Properties", "TemplateURL") for name in nested]
    for name in nested:
        relative = local.root["Resources"][name]["Properties"]["TemplateURL"]
        assert packaged["Resources"][name]["Properties"]["TemplateURL"] == urls[relative]
    assert local.root == original  # the build's root is not modified


def test_rewrite_refuses_a_child_the_manifest_does_not_list(local):
    urls = {name: f"https://b/{name}" for name in local.children.values() if name != "iam.json"}

    with pytest.raises(UsageError) as raised:
        package.rewrite_template_urls(local.root, urls)

    assert str(raised.value) == (
        "the root's IamStack points at 'iam.json', which manifest.json does not list as a child template "
        "(build.json, network.json, pipeline.json, storage.json); rebuild with `make build`")


# --- against LocalStack -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def packaged_twice(localstack_endpoint, tmp_path_factory):
    """package() run twice on a copy of build/local, as an account of its own (LocalStack takes a 12-digit
    access key id as the account id), so the template bucket is new and nobody else's."""
    folder = tmp_path_factory.mktemp("build")
    shutil.copytree(BUILT / "local", folder / "local", ignore=shutil.ignore_patterns("packaged.json"))
    build = manifest.load("local", folder)
    account = str(uuid.uuid4().int)[:12]
    session = boto3.Session(aws_access_key_id=account, aws_secret_access_key="test", region_name="eu-west-1")
    local = Target(session=session, region="eu-west-1", endpoint_url=localstack_endpoint, is_localstack=True)
    s3 = local.client("s3")
    bucket = package.template_bucket_name(account, "eu-west-1")
    first_log, second_log = [], []
    try:
        packaged, path = package.package(build, local, account, log=first_log.append)
        versions_after_first = _versions(s3, bucket)
        again, again_path = package.package(build, local, account, log=second_log.append)
        yield SimpleNamespace(build=build, s3=s3, bucket=bucket, packaged=packaged, path=path, again=again,
                              again_path=again_path, first_log=first_log, second_log=second_log,
                              versions_after_first=versions_after_first, versions_after_second=_versions(s3, bucket))
    finally:
        for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=bucket)


def _versions(s3, bucket: str) -> dict[str, list[str]]:
    listed = s3.list_object_versions(Bucket=bucket)
    assert "DeleteMarkers" not in listed
    versions: dict[str, list[str]] = {}
    for version in listed.get("Versions", []):
        versions.setdefault(version["Key"], []).append(version["VersionId"])
    return versions


@pytest.mark.localstack
def test_template_bucket_is_created_versioned_encrypted_and_private(packaged_twice):
    s3, bucket = packaged_twice.s3, packaged_twice.bucket

    assert packaged_twice.first_log[0] == f"created template bucket {bucket} (versioned, encrypted, private)"
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # A new bucket already gets SSE-S3 without a bucket key and all four blocks (S3's defaults since April
    # 2023, LocalStack's too): the bucket key shows package() set the encryption itself.
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"] == [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


@pytest.mark.localstack
def test_each_child_is_uploaded_once_under_its_content_key(packaged_twice):
    build = packaged_twice.build
    expected = {package.content_key(build, name, (build.folder / name).read_bytes())
                for name in build.children.values()}

    assert packaged_twice.first_log[1:] == [
        f"packaged 5 child templates to s3://{packaged_twice.bucket}/ (5 uploaded, 0 unchanged)"]
    assert set(packaged_twice.versions_after_first) == expected
    assert all(len(ids) == 1 for ids in packaged_twice.versions_after_first.values())


@pytest.mark.localstack
def test_second_run_uploads_nothing_and_packages_the_same_root(packaged_twice):
    assert packaged_twice.second_log == [
        f"packaged 5 child templates to s3://{packaged_twice.bucket}/ (0 uploaded, 5 unchanged)"]
    # The bucket is versioned: a second upload of the same key would have added a version.
    assert packaged_twice.versions_after_second == packaged_twice.versions_after_first
    assert packaged_twice.again == packaged_twice.packaged


@pytest.mark.localstack
def test_packaged_root_is_written_and_its_urls_serve_the_exact_children(packaged_twice, localstack_endpoint):
    build, packaged = packaged_twice.build, packaged_twice.packaged
    assert packaged_twice.path == build.folder / "packaged.json"
    assert json.loads(packaged_twice.path.read_text(encoding="utf-8")) == packaged
    # An empty ProxyHandler: an HTTP(S)_PROXY in the environment must not capture 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    for logical_id, file_name in build.children.items():
        url = packaged["Resources"][logical_id]["Properties"]["TemplateURL"]
        key = package.content_key(build, file_name, (build.folder / file_name).read_bytes())
        assert url == f"{localstack_endpoint.rstrip('/')}/{packaged_twice.bucket}/{key}"
        with opener.open(url, timeout=10) as reply:
            assert reply.read() == (build.folder / file_name).read_bytes()
