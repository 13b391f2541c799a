"""Typed, validated settings for one environment, read from ``config/<env>.toml``.

Everything that differs between environments lives in those files (Sceptre style); the
templates apply what the settings say and never test the environment's name. Settings are
validated once, here: every problem is collected and reported together, one line each, naming
the file and key, what is wrong and an allowed example. Downstream code trusts a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

# CloudFormation's allowed values for AWS::Logs::LogGroup RetentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
COMPUTE_TYPES = (
    "BUILD_GENERAL1_SMALL",
    "BUILD_GENERAL1_MEDIUM",
    "BUILD_GENERAL1_LARGE",
    "BUILD_GENERAL1_XLARGE",
    "BUILD_GENERAL1_2XLARGE",
)
# The newest curated Ubuntu image at the end of 2026 (Ubuntu 24.04). Older curated images
# (standard:5.0 in the seed) are deprecated: they are refused below.
DEFAULT_IMAGE = "aws/codebuild/standard:8.0"
OLDEST_STANDARD_IMAGE = 7
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
SOURCE_MODES = ("codestar-connection", "secretsmanager-token")
DELETION_POLICIES = ("Retain", "Delete")

# The artifact bucket is named "<project>-<env>-artifacts-<account id>-<region>" so that two
# environments, accounts or regions never collide. S3 allows 63 characters; the longest
# commercial region name ("ap-southeast-5") has 14, an account id 12.
BUCKET_NAME_MAX = 63
BUCKET_NAME_FIXED = len("-artifacts-") + 12 + 1 + 14

PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
# x86_64 only: the project runs on LINUX_CONTAINER (aarch64 images need ARM_CONTAINER).
IMAGE_RE = re.compile(r"^aws/codebuild/(standard|amazonlinux-(x86_64)-standard):(\d+)\.0$")
GITHUB_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
BRANCH_FORBIDDEN_RE = re.compile(r"(\.\.|[\s~^:?*\[\\]|@\{|//|^/|/$|\.lock$|^\.|/\.|\.$)")
CONNECTION_ARN_RE = re.compile(
    r"^arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:"
    r"connection/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str
    public_subnet_cidrs: tuple[str, str]
    private_subnet_cidrs: tuple[str, str]
    availability_zone_indexes: tuple[int, int]
    enable_nat: bool


@dataclass(frozen=True)
class StorageSettings:
    deletion_policy: str
    noncurrent_version_expiration_days: int


@dataclass(frozen=True)
class BuildSettings:
    enable_codebuild: bool
    compute_type: str
    image: str
    python_version: str
    log_retention_days: int
    timeout_minutes: int


@dataclass(frozen=True)
class GitHubSettings:
    owner: str
    repo: str
    branch: str
    source: str
    connection_arn: str | None
    token_secret_name: str | None


@dataclass(frozen=True)
class DeploySettings:
    stack_name: str
    termination_protection: bool


@dataclass(frozen=True)
class Settings:
    project: str
    environment: str
    region: str
    network: NetworkSettings
    storage: StorageSettings
    build: BuildSettings
    github: GitHubSettings
    deploy: DeploySettings


class SettingsError(Exception):
    """Every problem found in one settings file, one human-readable line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


_REQUIRED = object()
_TYPE_NAMES = {bool: "true or false", int: "a whole number", str: "a quoted string", list: "a list"}


class _Table:
    """Reads one TOML table, collecting problems instead of raising at the first one."""

    def __init__(self, source: str, prefix: str, data: Any, problems: list[str], known: tuple[str, ...]):
        self.source, self.prefix, self.problems = source, prefix, problems
        if not isinstance(data, dict):
            self.problem("", f"must be a table ([{prefix.rstrip('.')}])", f"[{prefix.rstrip('.')}]")
            data = {}
        self.data = data
        for key in sorted(set(data) - set(known)):
            allowed = ", ".join(known)
            self.problem(key, "unknown key", f"one of: {allowed}")

    def problem(self, key: str, what: str, example: str) -> None:
        where = f"{self.prefix}{key}" if key else self.prefix.rstrip(".")
        self.problems.append(f"{self.source}: {where}: {what}; allowed: {example}")

    def get(self, key: str, kind: type, example: str, default: Any = _REQUIRED,
            check: Callable[[Any], str | None] | None = None) -> Any:
        """The value of ``key`` if present, of the right type and passing ``check``; else None."""
        if key not in self.data:
            if default is _REQUIRED:
                self.problem(key, "is required", example)
                return None
            return default
        value = self.data[key]
        # TOML booleans are ints to Python; a flag written as 1 must not pass as a number.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"must be {_TYPE_NAMES[kind]}, got {value!r}", example)
            return None
        if check is not None and (why := check(value)) is not None:
            self.problem(key, why, example)
            return None
        return value


def _matches(pattern: re.Pattern[str], what: str) -> Callable[[str], str | None]:
    return lambda value: None if pattern.match(value) else f"{value!r} is not {what}"


def _one_of(choices: tuple[Any, ...]) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"{value!r} is not one of {', '.join(map(str, choices))}"


def _between(low: int, high: int) -> Callable[[int], str | None]:
    return lambda value: None if low <= value <= high else f"{value} is outside {low}..{high}"


def _check_branch(value: str) -> str | None:
    if not value or BRANCH_FORBIDDEN_RE.search(value):
        return f"{value!r} is not a valid git branch name"
    return None


def _check_image(value: str) -> str | None:
    match = IMAGE_RE.match(value)
    if not match:
        return f"{value!r} is not a curated CodeBuild Linux image"
    if match.group(1) == "standard" and int(match.group(3)) < OLDEST_STANDARD_IMAGE:
        return f"{value!r} is deprecated by AWS (standard images before {OLDEST_STANDARD_IMAGE}.0)"
    return None


def _check_vpc_cidr(value: str) -> str | None:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError as error:
        return f"{value!r} is not a valid IPv4 network ({error})"
    if not 16 <= network.prefixlen <= 24:
        return f"{value!r} has prefix /{network.prefixlen}; a VPC needs /16 to /24"
    return None


def _network(table: _Table, problems: list[str]) -> NetworkSettings | None:
    vpc_cidr = table.get("vpc_cidr", str, '"10.20.0.0/16" (a /16 to /24 block)', "10.20.0.0/16", _check_vpc_cidr)
    subnet_prefix = table.get("subnet_prefix", int, "24 (at least 2 more than the VPC's prefix, at most 28)", 24)
    public = table.get("public_subnet_cidrs", list, '["10.20.0.0/24", "10.20.1.0/24"]', None)
    az_indexes = table.get("availability_zone_indexes", list, "[0, 1] (two distinct indexes, 0-5)", [0, 1])
    enable_nat = table.get("enable_nat", bool, "false (NAT costs money; public subnets suffice)", False)
    before = len(problems)

    if isinstance(az_indexes, list) and not (
        len(az_indexes) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 5 for i in az_indexes)
        and az_indexes[0] != az_indexes[1]
    ):
        table.problem("availability_zone_indexes", f"{az_indexes!r} is not two distinct indexes 0-5", "[0, 1]")

    subnets: list[str] | None = None
    if vpc_cidr is not None and subnet_prefix is not None:
        vpc = ipaddress.IPv4Network(vpc_cidr)
        if not vpc.prefixlen + 2 <= subnet_prefix <= 28:
            table.problem(
                "subnet_prefix",
                f"/{subnet_prefix} cannot hold four subnets in {vpc_cidr}",
                f"{vpc.prefixlen + 2}..28, e.g. {min(vpc.prefixlen + 8, 28)}",
            )
        else:
            # Computed here, not with Fn::Cidr: LocalStack does not implement Fn::Cidr.
            subnets = [str(net) for net in list(vpc.subnets(new_prefix=subnet_prefix))[:4]]
        if public is not None:
            public_problem = _check_public_subnets(public, vpc)
            if public_problem:
                table.problem("public_subnet_cidrs", public_problem, f'["{subnets[0] if subnets else vpc_cidr}", ...]')
            elif subnets is not None:
                taken = [ipaddress.IPv4Network(cidr) for cidr in public]
                free = [str(net) for net in vpc.subnets(new_prefix=subnet_prefix)
                        if not any(net.overlaps(t) for t in taken)]
                if len(free) < 2:
                    table.problem("public_subnet_cidrs", "leave no room for the two private subnets",
                                  "smaller public subnets or a larger VPC")
                else:
                    subnets = list(public) + free[:2]
    if len(problems) > before or subnets is None:
        return None
    return NetworkSettings(
        vpc_cidr=vpc_cidr,
        public_subnet_cidrs=(subnets[0], subnets[1]),
        private_subnet_cidrs=(subnets[2], subnets[3]),
        availability_zone_indexes=(az_indexes[0], az_indexes[1]),
        enable_nat=enable_nat,
    )


def _check_public_subnets(public: list[Any], vpc: ipaddress.IPv4Network) -> str | None:
    if len(public) != 2 or not all(isinstance(cidr, str) for cidr in public):
        return f"{public!r} is not a list of two CIDR strings"
    networks = []
    for cidr in public:
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError as error:
            return f"{cidr!r} is not a valid IPv4 network ({error})"
        if not network.subnet_of(vpc):
            return f"{cidr} is outside the VPC {vpc}"
        if not 16 <= network.prefixlen <= 28:
            return f"{cidr} has prefix /{network.prefixlen}; a subnet needs /16 to /28"
        networks.append(network)
    if networks[0].overlaps(networks[1]):
        return f"{public[0]} and {public[1]} overlap"
    return None


def parse(data: dict[str, Any], environment: str, source: str) -> Settings:
    """Validate the parsed TOML ``data`` of ``environment``; raise SettingsError listing every problem."""
    problems: list[str] = []
    top = _Table(source, "", data, problems,
                 ("project", "region", "network", "storage", "build", "github", "deploy"))
    if not ENVIRONMENT_RE.match(environment):
        problems.append(f"{source}: environment name {environment!r} (the file's name) must be 2-10 lowercase "
                        "letters or digits, starting with a letter; allowed: dev, prod, staging2")
    project = top.get("project", str, '"cicd-platform" (3-20 lowercase letters, digits, hyphens)', check=_matches(
        PROJECT_RE, "3-20 lowercase letters, digits or hyphens starting with a letter"))
    region = top.get("region", str, '"us-east-1"', check=_matches(REGION_RE, "an AWS region name"))
    if project and ENVIRONMENT_RE.match(environment):
        length = len(project) + 1 + len(environment) + BUCKET_NAME_FIXED
        if length > BUCKET_NAME_MAX:
            top.problem("project", f"{project!r} with environment {environment!r} makes an artifact bucket name of "
                        f"up to {length} characters (S3 allows {BUCKET_NAME_MAX})",
                        f"a project name of at most {len(project) - (length - BUCKET_NAME_MAX)} characters")

    network = _network(_Table(source, "network.", data.get("network", {}), problems,
                              ("vpc_cidr", "subnet_prefix", "public_subnet_cidrs",
                               "availability_zone_indexes", "enable_nat")), problems)

    storage_table = _Table(source, "storage.", data.get("storage", {}), problems,
                           ("deletion_policy", "noncurrent_version_expiration_days"))
    deletion_policy = storage_table.get("deletion_policy", str, '"Retain" (keeps data) or "Delete"', "Retain",
                                        _one_of(DELETION_POLICIES))
    expiration = storage_table.get("noncurrent_version_expiration_days", int, "30 (1..3650)", 30, _between(1, 3650))

    build_table = _Table(source, "build.", data.get("build", {}), problems,
                         ("enable_codebuild", "compute_type", "image", "python_version",
                          "log_retention_days", "timeout_minutes"))
    enable_codebuild = build_table.get("enable_codebuild", bool, "true (false where CodeBuild is not emulated)", True)
    compute_type = build_table.get("compute_type", str, '"BUILD_GENERAL1_SMALL"', "BUILD_GENERAL1_SMALL",
                                   _one_of(COMPUTE_TYPES))
    image = build_table.get("image", str, f'"{DEFAULT_IMAGE}"', DEFAULT_IMAGE, _check_image)
    python_version = build_table.get("python_version", str, '"3.12"', "3.12", _one_of(PYTHON_VERSIONS))
    log_retention = build_table.get("log_retention_days", int, "14 (one of CloudFormation's values: 1, 3, 5, 7, "
                                    "14, 30, 60, 90, ...)", 14, _one_of(LOG_RETENTION_DAYS))
    timeout = build_table.get("timeout_minutes", int, "20 (5..480)", 20, _between(5, 480))

    github_table = _Table(source, "github.", data.get("github", {}), problems,
                          ("owner", "repo", "branch", "source", "connection_arn", "token_secret_name"))
    owner = github_table.get("owner", str, '"my-org" (a GitHub user or organisation)',
                             check=_matches(GITHUB_OWNER_RE, "a GitHub user or organisation name"))
    repo = github_table.get("repo", str, '"cicd-platform"', check=_matches(GITHUB_REPO_RE, "a GitHub repository name"))
    branch = github_table.get("branch", str, '"main"', "main", _check_branch)
    source_mode = github_table.get("source", str, '"codestar-connection" or "secretsmanager-token"',
                                   "codestar-connection", _one_of(SOURCE_MODES))
    connection_arn = token_secret = None
    if source_mode == "codestar-connection":
        connection_arn = github_table.get(
            "connection_arn", str,
            '"arn:aws:codeconnections:us-east-1:123456789012:connection/<uuid>" (README: GitHub source)',
            check=_matches(CONNECTION_ARN_RE, "a CodeConnections (CodeStar) connection ARN"))
        if "token_secret_name" in github_table.data:
            github_table.problem("token_secret_name", 'is only used with source = "secretsmanager-token"',
                                 "remove it, or set source accordingly")
    elif source_mode == "secretsmanager-token":
        token_secret = github_table.get("token_secret_name", str,
                                        '"github/cicd-platform-token" (README: GitHub source)',
                                        check=_matches(SECRET_NAME_RE, "a Secrets Manager secret name"))
        if "connection_arn" in github_table.data:
            github_table.problem("connection_arn", 'is only used with source = "codestar-connection"',
                                 "remove it, or set source accordingly")

    deploy_table = _Table(source, "deploy.", data.get("deploy", {}), problems,
                          ("stack_name", "termination_protection"))
    stack_name = deploy_table.get("stack_name", str, '"cicd-platform-dev"', f"{project}-{environment}",
                                  _matches(STACK_NAME_RE, "a CloudFormation stack name"))
    termination_protection = deploy_table.get("termination_protection", bool, "true for production", False)

    if problems:
        raise SettingsError(problems)
    return Settings(
        project=project,
        environment=environment,
        region=region,
        network=network,
        storage=StorageSettings(deletion_policy, expiration),
        build=BuildSettings(enable_codebuild, compute_type, image, python_version, log_retention, timeout),
        github=GitHubSettings(owner, repo, branch, source_mode, connection_arn, token_secret),
        deploy=DeploySettings(stack_name, termination_protection),
    )


def available_environments(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(path.stem for path in config_dir.glob("*.toml"))


def load(environment: str, config_dir: Path = CONFIG_DIR) -> Settings:
    """Read and validate ``config_dir/<environment>.toml``."""
    path = config_dir / f"{environment}.toml"
    try:
        source = str(path.relative_to(Path.cwd()))
    except ValueError:
        source = str(path)
    if not path.is_file():
        known = ", ".join(available_environments(config_dir)) or "none"
        raise SettingsError([f"{source}: no such settings file for environment {environment!r}; "
                             f"allowed: one of the files in {config_dir.name}/ ({known})"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SettingsError([f"{source}: not valid TOML ({error}); allowed: key = \"value\" lines "
                             "under [section] headers"]) from None
    return parse(data, environment, source)
