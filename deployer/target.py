"""Where the deploy goes: real AWS or LocalStack, and what that target can run.

The seed guessed LocalStack from the endpoint string alone. Here the endpoint is a first hint
(loopback, port 4566, ``*.localstack.cloud``) and ``/_localstack/health`` is asked when the hint
is absent; then CodeBuild is *probed*: LocalStack Community answers that it is not emulated
(it would otherwise create a silent placeholder project).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
LOCALSTACK_PORT = 4566
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=60)


@dataclass(frozen=True)
class Target:
    session: boto3.Session
    region: str
    endpoint_url: str | None
    is_localstack: bool

    def client(self, service: str):
        return self.session.client(service, region_name=self.region, endpoint_url=self.endpoint_url,
                                   config=RETRY_CONFIG)

    @property
    def name(self) -> str:
        return f"LocalStack at {self.endpoint_url}" if self.is_localstack else f"AWS ({self.region})"


def looks_like_localstack(endpoint_url: str | None) -> bool:
    """Decide from the URL alone."""
    if not endpoint_url:
        return False
    parsed = urlparse(endpoint_url)
    host = (parsed.hostname or "").lower()
    return host in LOCAL_HOSTS or parsed.port == LOCALSTACK_PORT or host.endswith(".localstack.cloud")


def answers_localstack_health(endpoint_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}/_localstack/health", timeout=timeout) as reply:
            return "services" in json.loads(reply.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_localstack(endpoint_url: str | None) -> bool:
    return bool(endpoint_url) and (looks_like_localstack(endpoint_url) or answers_localstack_health(endpoint_url))


def connect(region: str, endpoint_url: str | None, profile: str | None) -> Target:
    local = is_localstack(endpoint_url)
    if local:
        # LocalStack accepts any credentials; don't make a demo depend on ~/.aws.
        session = boto3.Session(profile_name=profile, region_name=region,
                                aws_access_key_id="test", aws_secret_access_key="test")
    else:
        session = boto3.Session(profile_name=profile, region_name=region)
    return Target(session=session, region=region, endpoint_url=endpoint_url, is_localstack=local)


# What LocalStack Community answers for a service it does not emulate.
NOT_EMULATED_CODES = {"InternalFailure", "NotImplemented", "NotImplementedError"}


def codebuild_available(target: Target) -> tuple[bool, str]:
    """Ask CodeBuild for real: (available, why not)."""
    try:
        target.client("codebuild").list_projects()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code in NOT_EMULATED_CODES or "not yet implemented" in message or "license" in message.lower():
            return False, f"CodeBuild is not available on {target.name} ({code}: {message})"
        raise
    return True, ""
