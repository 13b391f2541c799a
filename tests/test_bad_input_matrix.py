"""The bad-input matrix (README: "Bad input"): every row is a user mistake, the exact message the user reads,
exit code 2, and the AWS calls made — none, except where checking is the point.

Each row runs the real command (``python -m templates_src`` or ``deploy.py``) as a subprocess with
``AWS_ENDPOINT_URL`` pointing at a recording server started here, so "no AWS call made" is what the
server saw, not what the code promises. Rows that must ask AWS (the CodeBuild probe, the preflight
checks of the GitHub source) get canned replies modelled on AWS's and LocalStack's, and assert exactly
which calls were made: none of them creates anything.

deploy.py takes any loopback address for LocalStack, so a server standing in for AWS is reached by this
machine's host name (resolved to a local address); deploy.py first asks it for ``/_localstack/health``
(unsigned, not an AWS call), finds no LocalStack, and treats it as AWS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployer.target import looks_like_localstack
from tests.recording_server import RecordingServer, error_reply, json_reply
from tools.localstack import free_port

PROJECT = Path(__file__).resolve().parents[1]
LOCAL = "127.0.0.1"  # looks like LocalStack to deploy.py
REMOTE = "remote"  # a server reached by host name: taken for AWS
DEV_CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
SETTINGS_HEADER = "error: invalid settings (1 problem); nothing was written:\n  "
PROJECT_RULE = ("is not 3-20 lowercase letters, digits or hyphens starting with a letter; "
                'allowed: "cicd-platform" (3-20 lowercase letters, digits, hyphens)')
NOT_EMULATED = ("The API for service 'codebuild' is either not included in your current license plan or has not yet "
                "been emulated by LocalStack.")
PARAMETERS = "EnableCodeBuild, EnableNat, Environment, ProjectName"


def codebuild_not_emulated(request):
    """LocalStack Community's answer to any CodeBuild call."""
    if request.action == "ListProjects":
        return error_reply(request, "InternalFailure", NOT_EMULATED, status=501)
    return None


def codebuild_and(reply_for_check):
    """AWS with CodeBuild; ``reply_for_check`` answers the preflight's GitHub source check."""
    def route(request):
        if request.action == "ListProjects":
            return json_reply({"projects": ["cicd-platform-dev-build"]})
        if request.action in ("GetConnection", "DescribeSecret"):
            return reply_for_check(request)
        return None
    return route


def connection(status):
    return lambda request: json_reply({"Connection": {
        "ConnectionName": "cicd-platform-github", "ConnectionArn": DEV_CONNECTION, "ProviderType": "GitHub",
        "OwnerAccountId": "123456789012", "ConnectionStatus": status}})


def not_found(message):
    return lambda request: error_reply(request, "ResourceNotFoundException", message)


@dataclass(frozen=True)
class Row:
    """One line of the README table: what the user did, what they read, what reached AWS."""

    name: str
    user_input: str  # as the README shows it
    message: str  # the line(s) the user reads, without "error: " ({endpoint}, {build} filled in)
    command: tuple[str, ...]  # after `python`
    settings: tuple[tuple[str, str], ...] = ()  # text replacements in config/local.toml
    route: object = None  # the recording server's replies
    host: str = LOCAL
    env: dict = field(default_factory=dict)
    aws_calls: tuple[str, ...] = ()
    usage_error: bool = False  # argparse: usage lines, then "deploy.py: error: ..."


def settings_row(name, user_input, old, new, message):
    return Row(name, user_input, message, ("-m", "templates_src", "--env", "local", "--config-dir", "config",
                                           "--out", "out"), settings=((old, new),))


def deploy_row(name, user_input, message, *arguments, **more):
    return Row(name, user_input, message, ("deploy.py", *arguments), **more)


ROWS = [
    # settings: python -m templates_src --env local
    settings_row("bad CIDR", '`vpc_cidr = "10.300.0.0/16"`', 'vpc_cidr = "10.20.0.0/16"', 'vpc_cidr = "10.300.0.0/16"',
                 "config/local.toml: network.vpc_cidr: '10.300.0.0/16' is not a valid IPv4 network (Octet 300 (> 255) "
                 "not permitted in '10.300.0.0'); allowed: \"10.20.0.0/16\" (a /16 to /24 block)"),
    settings_row("overlapping subnets", '`public_subnet_cidrs = ["10.20.0.0/24", "10.20.0.128/25"]`',
                 "subnet_prefix = 24", 'subnet_prefix = 24\npublic_subnet_cidrs = ["10.20.0.0/24", "10.20.0.128/25"]',
                 "config/local.toml: network.public_subnet_cidrs: 10.20.0.0/24 and 10.20.0.128/25 overlap; "
                 'allowed: ["10.20.0.0/24", ...]'),
    settings_row("subnet outside the VPC", '`public_subnet_cidrs = ["10.20.0.0/24", "10.21.1.0/24"]`',
                 "subnet_prefix = 24", 'subnet_prefix = 24\npublic_subnet_cidrs = ["10.20.0.0/24", "10.21.1.0/24"]',
                 "config/local.toml: network.public_subnet_cidrs: 10.21.1.0/24 is outside the VPC 10.20.0.0/16; "
                 'allowed: ["10.20.0.0/24", ...]'),
    settings_row("bad project name", '`project = "CICD_Platform"`', 'project = "cicd-platform"',
                 'project = "CICD_Platform"', f"config/local.toml: project: 'CICD_Platform' {PROJECT_RULE}"),
    settings_row("unknown key", "`nat = true` in `[network]`", "enable_nat = false", "enable_nat = false\nnat = true",
                 "config/local.toml: network.nat: unknown key; allowed: one of: vpc_cidr, subnet_prefix, "
                 "public_subnet_cidrs, availability_zone_indexes, enable_nat"),
    settings_row("wrong type", '`enable_nat = "yes"`', "enable_nat = false", 'enable_nat = "yes"',
                 "config/local.toml: network.enable_nat: must be true or false, got 'yes'; "
                 "allowed: false (NAT costs money; public subnets suffice)"),
    Row("unknown environment (settings)", "`python -m templates_src --env staging`",
        "config/staging.toml: no such settings file for environment 'staging'; allowed: one of the files in config/ "
        "(dev, local, prod)", ("-m", "templates_src", "--env", "staging", "--config-dir", "config", "--out", "out")),
    # deploy.py: arguments and the build
    deploy_row("unknown command", "`deploy.py deplyo --env local`",
               "argument command: invalid choice: 'deplyo' (choose from 'deploy', 'plan', 'outputs', 'destroy', "
               "'watch')", "deplyo", "--env", "local", usage_error=True),
    deploy_row("no --env", "`deploy.py deploy`", "the following arguments are required: --env", "deploy",
               usage_error=True),
    deploy_row("unknown environment (build)", "`deploy.py deploy --env staging`",
               "no build for environment 'staging' ({build}/staging/manifest.json is missing); run `make build "
               "ENV=staging` (or `python -m templates_src --env staging`) first; built environments: dev, local, prod",
               "deploy", "--env", "staging"),
    deploy_row("malformed --param", "`--param EnableNat`",
               "--param 'EnableNat' is not KEY=VALUE (e.g. --param EnableCodeBuild=false)",
               "deploy", "--env", "local", "--param", "EnableNat"),
    deploy_row("unknown parameter", "`--param EnableNAT=true`",
               f"--param EnableNAT: the root stack has no such parameter; allowed: {PARAMETERS}",
               "deploy", "--env", "local", "--param", "EnableNAT=true"),
    deploy_row("parameter value not allowed", "`--param EnableNat=yes`",
               "--param EnableNat=yes: not allowed; allowed: true, false",
               "deploy", "--env", "local", "--param", "EnableNat=yes"),
    # deploy.py: the target
    deploy_row("EnableNat=true on LocalStack", "`--param EnableNat=true` to LocalStack",
               "--param EnableNat=true: LocalStack does not emulate the NAT gateway's Elastic IP; deploy NAT to AWS, "
               "or drop the parameter", "deploy", "--env", "local", "--param", "EnableNat=true"),
    deploy_row("EnableCodeBuild=true without CodeBuild", "`--param EnableCodeBuild=true` to LocalStack Community",
               f"--param EnableCodeBuild=true: CodeBuild is not available on LocalStack at {{endpoint}} "
               f"(InternalFailure: {NOT_EMULATED}); drop the parameter to deploy without CodeBuild and the pipeline",
               "deploy", "--env", "local", "--param", "EnableCodeBuild=true", route=codebuild_not_emulated,
               aws_calls=("codebuild.ListProjects",)),
    deploy_row("endpoint not an URL", "`--endpoint-url localhost:4566`",
               "endpoint 'localhost:4566' is not an http(s) URL; allowed: e.g. http://127.0.0.1:4566",
               "deploy", "--env", "local", "--endpoint-url", "localhost:4566"),
    deploy_row("nothing listening", "`AWS_ENDPOINT_URL` of a stopped LocalStack",
               "cannot reach {endpoint} (Connection refused); is LocalStack running? Start it with `make local-up`",
               "deploy", "--env", "local", host="closed"),
    deploy_row("no credentials", "no keys, profile or SSO session (AWS)",
               "no usable AWS credentials (Unable to locate credentials); configure them (`aws configure`, "
               "`aws sso login`, or AWS_PROFILE) or pass --endpoint-url for LocalStack",
               "deploy", "--env", "local", host=REMOTE,
               env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None}),
    deploy_row("unknown profile", "`AWS_PROFILE=nope`",
               "no usable AWS credentials (The config profile (nope) could not be found); configure them "
               "(`aws configure`, `aws sso login`, or AWS_PROFILE) or pass --endpoint-url for LocalStack",
               "deploy", "--env", "local", env={"AWS_PROFILE": "nope"}),
    deploy_row("destroy production without --yes", "`deploy.py destroy --env prod`",
               "prod is a production environment (settings: deploy.termination_protection): destroying it needs --yes",
               "destroy", "--env", "prod"),
    # deploy.py: preflight of the GitHub source (EnableCodeBuild=true on AWS); these must ask AWS
    deploy_row("connection missing", "`github.connection_arn` of a deleted connection",
               f"the GitHub connection {DEV_CONNECTION} cannot be read (ResourceNotFoundException: Connection "
               f"{DEV_CONNECTION} not found); create one with `aws codeconnections create-connection --provider-type "
               "GitHub --connection-name cicd-platform-github` and set github.connection_arn in config/dev.toml",
               "deploy", "--env", "dev", host=REMOTE,
               route=codebuild_and(not_found(f"Connection {DEV_CONNECTION} not found")),
               aws_calls=("codebuild.ListProjects", "codeconnections.GetConnection")),
    deploy_row("connection not AVAILABLE", "`github.connection_arn` of a PENDING connection",
               f"the GitHub connection {DEV_CONNECTION} is PENDING, not AVAILABLE: finish its handshake in the console "
               "(Developer Tools › Settings › Connections › Update pending connection), then deploy again",
               "deploy", "--env", "dev", host=REMOTE, route=codebuild_and(connection("PENDING")),
               aws_calls=("codebuild.ListProjects", "codeconnections.GetConnection")),
    deploy_row("token secret missing", "`github.token_secret_name` of a secret never stored",
               "the GitHub token secret 'github/cicd-platform-token' cannot be read (ResourceNotFoundException: "
               "Secrets Manager can't find the specified secret.); store it with `aws secretsmanager create-secret "
               "--name github/cicd-platform-token --secret-string "
               "'{{\"token\":\"<github token>\",\"webhook_secret\":\"<random string>\"}}'`",
               "deploy", "--env", "prod", host=REMOTE,
               route=codebuild_and(not_found("Secrets Manager can't find the specified secret.")),
               aws_calls=("codebuild.ListProjects", "secretsmanager.DescribeSecret")),
]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    """The local, dev and prod builds, in a private folder."""
    out = tmp_path_factory.mktemp("matrix") / "build"
    subprocess.run([sys.executable, "-m", "templates_src", "--env", "local", "--env", "dev", "--env", "prod",
                    "--out", str(out), "--quiet"], cwd=PROJECT, check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def remote_address() -> str:
    """The local address this machine's host name resolves to (a server there is not "obviously local")."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
        socket.create_server((address, 0)).close()
    except OSError as error:
        pytest.skip(f"the host name {name!r} does not resolve to an address of this machine ({error})")
    if name in ("localhost", "") or looks_like_localstack(f"http://{name}:1"):
        pytest.skip(f"the host name {name!r} looks like LocalStack to deploy.py")
    return address


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input_is_refused_with_the_exact_message_and_exit_2(row, build_dir, tmp_path, request):
    remote_address = request.getfixturevalue("remote_address") if row.host == REMOTE else None
    cwd = PROJECT
    if row.command[:2] == ("-m", "templates_src"):
        cwd = tmp_path  # messages name config/local.toml relative to the working directory
        shutil.copytree(PROJECT / "config", tmp_path / "config")
        text = (tmp_path / "config" / "local.toml").read_text(encoding="utf-8")
        for old, new in row.settings:
            assert old in text, old
            text = text.replace(old, new, 1)
        (tmp_path / "config" / "local.toml").write_text(text, encoding="utf-8")
    arguments = list(row.command)
    if row.command[0] == "deploy.py" and not row.usage_error:
        arguments += ["--build-dir", str(build_dir)]

    where = {"host": LOCAL}
    if row.host == REMOTE:
        where = {"host": remote_address, "name": socket.gethostname()}
    with RecordingServer(row.route, **where) as server:
        endpoint = f"http://{LOCAL}:{free_port()}" if row.host == "closed" else server.url
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "NO_PROXY": "*", "PYTHONPATH": str(PROJECT),
               # no shared files, no instance metadata: credentials come from the environment or nowhere
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_EC2_METADATA_DISABLED": "true"}
        for name, value in row.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        result = subprocess.run([sys.executable, *arguments], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)

    message = row.message.format(endpoint=endpoint, build=build_dir)
    described = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, described
    if row.usage_error:
        assert result.stderr.startswith("usage: deploy.py "), described
        assert result.stderr.endswith(f"deploy.py: error: {message}\n"), described
    elif row.command[:2] == ("-m", "templates_src"):
        assert result.stderr == f"{SETTINGS_HEADER}{message}\n", described
        assert not (tmp_path / "out").exists()
    else:
        assert result.stderr == f"error: {message}\n", described
    assert "Traceback" not in result.stdout + result.stderr
    assert [r.operation for r in server.requests if r.service] == list(row.aws_calls)
    # the only unsigned request deploy.py may make: asking a server that is not obviously local if it is LocalStack
    assert {r.operation for r in server.requests if not r.service} <= {"GET /_localstack/health"}


def test_the_matrix_has_at_least_15_rows_of_each_kind_the_issue_names():
    assert len(ROWS) >= 15
    assert sum(row.command[:2] == ("-m", "templates_src") for row in ROWS) >= 7
    assert sum(bool(row.aws_calls) and row.host == REMOTE for row in ROWS) == 3


def readme_table() -> str:
    """The README's table, made from ROWS:
    ``.venv/bin/python -c 'from tests.test_bad_input_matrix import readme_table; print(readme_table())'``.
    Settings rows show the problem's line (under "error: invalid settings (1 problem); nothing was written:")."""
    lines = ["| input | message | exit code |", "|---|---|---|"]
    for row in ROWS:
        message = row.message.format(endpoint="http://127.0.0.1:4566", build="build").replace("|", "\\|")
        if row.usage_error:
            message = f"deploy.py: error: {message}"
        elif row.command[:2] != ("-m", "templates_src"):
            message = f"error: {message}"
        lines.append(f"| {row.user_input} | `` {message} `` | 2 |")
    return "\n".join(lines)


def test_the_readme_shows_this_matrix():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert readme_table().strip() in readme, "README's bad-input table is stale: paste readme_table()'s output"
