"""Upload the child templates and point the root at them (what ``aws cloudformation package`` does).

Each child goes to the template bucket under a key derived from its content, so an unchanged
child is never uploaded twice and the packaged root changes exactly when a child does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deployer.errors import UsageError
from deployer.manifest import Build
from deployer.target import Target

PACKAGED = "packaged.json"


def template_bucket_name(account_id: str, region: str) -> str:
    # One bucket per account and region, shared by every stack this tool deploys there.
    return f"cfn-templates-{account_id}-{region}"


def content_key(build: Build, file_name: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:20]
    return f"{build.project}/{build.environment}/{digest}-{file_name}"


def template_url(target: Target, bucket: str, key: str) -> str:
    """The URL CloudFormation on ``target`` fetches ``key`` from."""
    if target.is_localstack and target.endpoint_url:
        # Path-style on the emulator: it serves every bucket under the endpoint.
        return f"{target.endpoint_url.rstrip('/')}/{bucket}/{key}"
    # On AWS, whatever endpoint the API calls go through (a VPC or FIPS endpoint in AWS_ENDPOINT_URL),
    # CloudFormation accepts only S3's own URLs.
    domain = "amazonaws.com.cn" if target.region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{target.region}.{domain}/{key}"


def ensure_template_bucket(target: Target, bucket: str) -> bool:
    """Create the template bucket (versioned, encrypted, private) if missing; True if created."""
    s3 = target.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("403", "AccessDenied"):
            raise UsageError(f"the template bucket {bucket} exists but these credentials cannot use it (403); "
                             "it belongs to another account, or s3:ListBucket on it is denied") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    options = {} if target.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": target.region}}
    try:
        s3.create_bucket(Bucket=bucket, **options)
    except ClientError as error:
        # Another deploy in this account created it since head_bucket: it configures it too.
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return False
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
    })
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}],
    })
    return True


def rewrite_template_urls(root: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    """A copy of ``root`` whose nested stacks' relative TemplateURLs are replaced by ``urls[file]``.

    Nothing else changes (the W3002 lint suppression stays, though moot once the URLs point at S3):
    the packaged root differs from the built one exactly where the children's locations do.
    """
    packaged = copy.deepcopy(root)
    for logical_id, resource in packaged.get("Resources", {}).items():
        if resource.get("Type") == "AWS::CloudFormation::Stack":
            relative = resource["Properties"]["TemplateURL"]
            if relative not in urls:
                raise UsageError(f"the root's {logical_id} points at {relative!r}, which manifest.json does not "
                                 f"list as a child template ({', '.join(sorted(urls))}); rebuild with "
                                 "`make build`")
            resource["Properties"]["TemplateURL"] = urls[relative]
    return packaged


def package(build: Build, target: Target, account_id: str, log=print) -> tuple[dict[str, Any], Path]:
    """Upload what is missing; write and return the packaged root."""
    bucket = template_bucket_name(account_id, target.region)
    if ensure_template_bucket(target, bucket):
        log(f"created template bucket {bucket} (versioned, encrypted, private)")
    s3 = target.client("s3")
    urls, uploaded = {}, 0
    for file_name in sorted(set(build.children.values())):
        body = (build.folder / file_name).read_bytes()
        key = content_key(build, file_name, body)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
            uploaded += 1
        urls[file_name] = template_url(target, bucket, key)
    log(f"packaged {len(urls)} child templates to s3://{bucket}/ ({uploaded} uploaded, "
        f"{len(urls) - uploaded} unchanged)")
    packaged = rewrite_template_urls(build.root, urls)
    path = build.folder / PACKAGED
    path.write_text(json.dumps(packaged, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return packaged, path
