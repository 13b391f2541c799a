"""Where the deploy goes: real AWS or LocalStack, and what that target can run.

The seed guessed LocalStack from the endpoint string alone. Here the endpoint is a first hint
(loopback, port 4566, ``*.localstack.cloud``) and ``/_localstack/health`` is asked when the hint
is absent; then CodeBuild is *probed*: LocalStack Community answers that it is not emulated
(it would otherwise create a silent placeholder project).
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from deployer.errors import UsageError

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
LOCALSTACK_PORT = 4566
RETRY_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 8}, connect_timeout=5, read_timeout=60)


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
    """Decide from the URL alone: a loopback host, LocalStack's port, or its public domain."""
    if not endpoint_url:
        return False
    parsed = urlparse(endpoint_url)
    host = (parsed.hostname or "").lower()
    try:
        port = parsed.port
    except ValueError:  # "http://host:abc": not a URL botocore would accept either
        port = None
    return (host in LOCAL_HOSTS or _is_loopback(host) or port == LOCALSTACK_PORT
            or host.endswith(".localstack.cloud"))


def _is_loopback(host: str) -> bool:
    # All of 127.0.0.0/8 is loopback, not just 127.0.0.1.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def answers_localstack_health(endpoint_url: str, timeout: float = 2.0) -> bool:
    """True if ``ENDPOINT/_localstack/health`` answers LocalStack's health JSON (``{"services": …}``)."""
    try:
        with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}/_localstack/health", timeout=timeout) as reply:
            health = json.loads(reply.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(health, dict) and isinstance(health.get("services"), dict)


def is_localstack(endpoint_url: str | None) -> bool:
    return bool(endpoint_url) and (looks_like_localstack(endpoint_url) or answers_localstack_health(endpoint_url))


def check_endpoint(endpoint_url: str) -> None:
    """Refuse what botocore would refuse with a bare ValueError ("Invalid endpoint: localhost:4566")."""
    parsed = urlparse(endpoint_url)
    try:
        valid_port = parsed.port is None or parsed.port > 0
    except ValueError:  # "http://localhost:port", or out of range
        valid_port = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not valid_port:
        raise UsageError(f"the endpoint {endpoint_url!r} (--endpoint-url or AWS_ENDPOINT_URL) is not an http(s) URL "
                         "with a host and an optional numeric port; e.g. http://127.0.0.1:4566")


def connect(region: str, endpoint_url: str | None, profile: str | None) -> Target:
    if endpoint_url:
        check_endpoint(endpoint_url)
    local = is_localstack(endpoint_url)
    if local:
        # LocalStack accepts any credentials; don't make a demo depend on ~/.aws (an AWS_PROFILE naming
        # a profile this machine lacks would otherwise stop it with ProfileNotFound).
        session = boto3.Session(region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    else:
        session = boto3.Session(profile_name=profile, region_name=region)
    return Target(session=session, region=region, endpoint_url=endpoint_url, is_localstack=local)


# LocalStack 4.13.1 Community answers every call of a service it does not emulate with HTTP 501,
# InternalFailure, "The API for service codebuild is either not included in your current license plan
# or has not yet been emulated by LocalStack." (measured). AWS uses InternalFailure for a transient
# HTTP 500 as well, so the code alone proves nothing: the status or the wording must say so.
NOT_EMULATED_STATUS = 501
NOT_EMULATED_CODES = {"NotImplemented", "NotImplementedError"}
NOT_EMULATED_WORDS = ("not yet been emulated", "not yet implemented", "license plan")
# The API answered, only this principal may not list projects: CodeBuild itself is there.
ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException"}


def codebuild_available(target: Target) -> tuple[bool, str]:
    """Ask CodeBuild for real: (available, why not)."""
    try:
        target.client("codebuild").list_projects()
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", ""), details.get("Message", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ACCESS_DENIED_CODES:
            return True, ""
        if (status == NOT_EMULATED_STATUS or code in NOT_EMULATED_CODES
                or any(words in message for words in NOT_EMULATED_WORDS)):
            return False, f"CodeBuild is not available on {target.name} ({code}: {message})"
        raise
    return True, ""
