"""Checks that catch, before any change, what would make the pipeline fail half-way through a deploy."""

from __future__ import annotations

from botocore.exceptions import ClientError

from deployer.errors import UsageError
from deployer.manifest import Build
from deployer.target import Target


def check_github_source(build: Build, target: Target) -> None:
    """The pipeline's GitHub source must exist and be usable (README: "GitHub source")."""
    github = build.github
    if github["source"] == "codestar-connection":
        arn = github["connection_arn"]
        service = "codeconnections" if ":codeconnections:" in arn else "codestar-connections"
        try:
            status = target.client(service).get_connection(ConnectionArn=arn)["Connection"]["ConnectionStatus"]
        except ClientError as error:
            raise UsageError(
                f"the GitHub connection {arn} cannot be read ({_reason(error)}); create one with "
                f"`aws codeconnections create-connection --provider-type GitHub --connection-name "
                f"{build.project}-github` and set github.connection_arn in config/{build.environment}.toml"
            ) from None
        if status != "AVAILABLE":
            raise UsageError(
                f"the GitHub connection {arn} is {status}, not AVAILABLE: finish its handshake in the console "
                "(Developer Tools › Settings › Connections › Update pending connection), then deploy again"
            )
    else:
        name = github["token_secret_name"]
        try:
            target.client("secretsmanager").describe_secret(SecretId=name)
        except ClientError as error:
            raise UsageError(
                f"the GitHub token secret {name!r} cannot be read ({_reason(error)}); store it with "
                f"`aws secretsmanager create-secret --name {name} --secret-string "
                "'{\"token\":\"<github token>\",\"webhook_secret\":\"<random string>\"}'`"
            ) from None


def _reason(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Error')}: {details.get('Message', '')}".rstrip(": ")
