"""templates_src/settings.py: every bad input gives the exact line the user sees; good files load as written.

cfn-lint style: ``tests/fixtures/bad_settings/`` holds small broken copies of ``config/dev.toml`` (one
problem each, named after it), and ``BAD_SETTINGS`` below pairs each file with the line the user must
read. Each file is loaded the way the CLI loads it: saved as ``config/<env>.toml`` and read with the
working directory at the project root, so messages name ``config/dev.toml``.
"""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import pytest

from templates_src import settings
from templates_src.settings import (
    BuildSettings,
    DeploySettings,
    GitHubSettings,
    NetworkSettings,
    Settings,
    SettingsError,
    StorageSettings,
)

PROJECT = Path(__file__).resolve().parents[1]
CONFIG = PROJECT / "config"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bad_settings"

DEV_CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
LOCAL_CONNECTION = "arn:aws:codeconnections:us-east-1:000000000000:connection/00000000-0000-0000-0000-000000000000"
ARN_EXAMPLE = '"arn:aws:codeconnections:us-east-1:123456789012:connection/<uuid>" (README: GitHub source)'
VPC_EXAMPLE = '"10.20.0.0/16" (a /16 to /24 block)'
LOG_EXAMPLE = "14 (one of CloudFormation's values: 1, 3, 5, 7, 14, 30, 60, 90, ...)"
PROJECT_RULE = ("is not 3-20 lowercase letters, digits or hyphens starting with a letter; "
                'allowed: "cicd-platform" (3-20 lowercase letters, digits, hyphens)')

# Fixture file -> the one line the user must see. Each file is config/dev.toml with one thing broken.
BAD_SETTINGS = {
    # project and environment names
    "project_uppercase.toml": f"config/dev.toml: project: 'CICD-Platform' {PROJECT_RULE}",
    "project_too_long.toml": f"config/dev.toml: project: 'cicd-platform-for-github' {PROJECT_RULE}",
    "project_too_long_for_bucket.toml": (
        "config/staging.toml: project: 'cicd-platform-github' with environment 'staging' makes an artifact "
        "bucket name of up to 66 characters (S3 allows 63); allowed: a project name of at most 17 characters"),
    # region
    "region_format.toml": (
        "config/dev.toml: region: 'US East (N. Virginia)' is not an AWS region name; allowed: \"us-east-1\""),
    # network
    "vpc_cidr_invalid.toml": (
        "config/dev.toml: network.vpc_cidr: '10.300.0.0/16' is not a valid IPv4 network "
        f"(Octet 300 (> 255) not permitted in '10.300.0.0'); allowed: {VPC_EXAMPLE}"),
    "vpc_cidr_host_bits.toml": (
        "config/dev.toml: network.vpc_cidr: '10.30.1.0/16' is not a valid IPv4 network "
        f"(10.30.1.0/16 has host bits set); allowed: {VPC_EXAMPLE}"),
    "vpc_cidr_prefix_too_short.toml": (
        "config/dev.toml: network.vpc_cidr: '10.0.0.0/12' has prefix /12; a VPC needs /16 to /24; "
        f"allowed: {VPC_EXAMPLE}"),
    "vpc_cidr_prefix_too_long.toml": (
        "config/dev.toml: network.vpc_cidr: '10.30.0.0/26' has prefix /26; a VPC needs /16 to /24; "
        f"allowed: {VPC_EXAMPLE}"),
    "subnet_prefix_too_small.toml": (
        "config/dev.toml: network.subnet_prefix: /17 cannot hold four subnets in 10.30.0.0/16; "
        "allowed: 18..28, e.g. 24"),
    "subnet_prefix_too_large.toml": (
        "config/dev.toml: network.subnet_prefix: /29 cannot hold four subnets in 10.30.0.0/16; "
        "allowed: 18..28, e.g. 24"),
    "public_subnet_outside_vpc.toml": (
        "config/dev.toml: network.public_subnet_cidrs: 10.31.1.0/24 is outside the VPC 10.30.0.0/16; "
        'allowed: ["10.30.0.0/24", ...]'),
    "public_subnets_overlap.toml": (
        "config/dev.toml: network.public_subnet_cidrs: 10.30.0.0/24 and 10.30.0.128/25 overlap; "
        'allowed: ["10.30.0.0/24", ...]'),
    "public_subnets_not_two.toml": (
        "config/dev.toml: network.public_subnet_cidrs: ['10.30.0.0/24', '10.30.1.0/24', '10.30.2.0/24'] "
        'is not a list of two CIDR strings; allowed: ["10.30.0.0/24", ...]'),
    "public_subnets_leave_no_room.toml": (
        "config/dev.toml: network.public_subnet_cidrs: leave no room for the two private subnets; "
        "allowed: smaller public subnets or a larger VPC"),
    "az_indexes_equal.toml": (
        "config/dev.toml: network.availability_zone_indexes: [1, 1] is not two distinct indexes 0-5; "
        "allowed: [0, 1]"),
    "az_index_out_of_range.toml": (
        "config/dev.toml: network.availability_zone_indexes: [0, 6] is not two distinct indexes 0-5; "
        "allowed: [0, 1]"),
    "enable_nat_wrong_type.toml": (
        "config/dev.toml: network.enable_nat: must be true or false, got 'no'; "
        "allowed: false (NAT costs money; public subnets suffice)"),
    # storage
    "artifact_retention_zero.toml": (
        "config/dev.toml: storage.noncurrent_version_expiration_days: 0 is outside 1..3650; "
        "allowed: 30 (1..3650)"),
    "artifact_retention_too_long.toml": (
        "config/dev.toml: storage.noncurrent_version_expiration_days: 4000 is outside 1..3650; "
        "allowed: 30 (1..3650)"),
    "deletion_policy_invalid.toml": (
        "config/dev.toml: storage.deletion_policy: 'retain' is not one of Retain, Delete; "
        'allowed: "Retain" (keeps data) or "Delete"'),
    # build
    "log_retention_not_allowed.toml": (
        "config/dev.toml: build.log_retention_days: 10 is not one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, "
        f"180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653; allowed: {LOG_EXAMPLE}"),
    "log_retention_string.toml": (
        f"config/dev.toml: build.log_retention_days: must be a whole number, got '30'; allowed: {LOG_EXAMPLE}"),
    "compute_type_unknown.toml": (
        "config/dev.toml: build.compute_type: 'BUILD_GENERAL1_HUGE' is not one of BUILD_GENERAL1_SMALL, "
        "BUILD_GENERAL1_MEDIUM, BUILD_GENERAL1_LARGE, BUILD_GENERAL1_XLARGE, BUILD_GENERAL1_2XLARGE; "
        'allowed: "BUILD_GENERAL1_SMALL"'),
    "image_deprecated.toml": (
        "config/dev.toml: build.image: 'aws/codebuild/standard:5.0' is deprecated by AWS (standard images "
        'before 7.0); allowed: "aws/codebuild/standard:8.0"'),
    "image_not_curated.toml": (
        "config/dev.toml: build.image: 'python:3.12-slim' is not a curated CodeBuild Linux image; "
        'allowed: "aws/codebuild/standard:8.0"'),
    "python_version_unsupported.toml": (
        "config/dev.toml: build.python_version: '3.9' is not one of 3.11, 3.12, 3.13; allowed: \"3.12\""),
    "timeout_out_of_range.toml": (
        "config/dev.toml: build.timeout_minutes: 1 is outside 5..480; allowed: 20 (5..480)"),
    # github
    "github_owner_invalid.toml": (
        "config/dev.toml: github.owner: '-example-org' is not a GitHub user or organisation name; "
        'allowed: "my-org" (a GitHub user or organisation)'),
    "github_repo_invalid.toml": (
        "config/dev.toml: github.repo: 'cicd platform' is not a GitHub repository name; "
        'allowed: "cicd-platform"'),
    "github_branch_invalid.toml": (
        "config/dev.toml: github.branch: 'feature..x' is not a valid git branch name; allowed: \"main\""),
    "github_source_unknown.toml": (
        "config/dev.toml: github.source: 'github-app' is not one of codestar-connection, secretsmanager-token; "
        'allowed: "codestar-connection" or "secretsmanager-token"'),
    "connection_arn_missing.toml": f"config/dev.toml: github.connection_arn: is required; allowed: {ARN_EXAMPLE}",
    "connection_arn_malformed.toml": (
        "config/dev.toml: github.connection_arn: 'arn:aws:codestar:us-east-1:123456789012:connection/"
        "11111111-2222-3333-4444-555555555555' is not a CodeConnections (CodeStar) connection ARN; "
        f"allowed: {ARN_EXAMPLE}"),
    "token_secret_missing.toml": (
        "config/dev.toml: github.token_secret_name: is required; "
        'allowed: "github/cicd-platform-token" (README: GitHub source)'),
    "connection_arn_in_token_mode.toml": (
        'config/dev.toml: github.connection_arn: is only used with source = "codestar-connection"; '
        "allowed: remove it, or set source accordingly"),
    "token_secret_in_connection_mode.toml": (
        'config/dev.toml: github.token_secret_name: is only used with source = "secretsmanager-token"; '
        "allowed: remove it, or set source accordingly"),
    # deploy
    "termination_protection_wrong_type.toml": (
        "config/dev.toml: deploy.termination_protection: must be true or false, got 0; "
        "allowed: true for production"),
    "stack_name_invalid.toml": (
        "config/dev.toml: deploy.stack_name: 'cicd_platform_dev' is not a CloudFormation stack name; "
        'allowed: "cicd-platform-dev"'),
    # shape of the file
    "unknown_top_level_key.toml": (
        "config/dev.toml: branch: unknown key; "
        "allowed: one of: project, region, network, storage, build, github, deploy"),
    "unknown_section_key.toml": (
        "config/dev.toml: build.enable_code_build: unknown key; allowed: one of: enable_codebuild, "
        "compute_type, image, python_version, log_retention_days, timeout_minutes"),
    "section_not_a_table.toml": "config/dev.toml: storage: must be a table ([storage]); allowed: [storage]",
}
# The environment a fixture is saved as, when not "dev" (the bucket name grows with it).
ENVIRONMENT_OF = {"project_too_long_for_bucket.toml": "staging"}

SEVERAL_PROBLEMS = "several_problems.toml"
SEVERAL_PROBLEMS_LINES = [
    f"config/dev.toml: project: 'CICD' {PROJECT_RULE}",
    f"config/dev.toml: network.vpc_cidr: '10.0.0.0/8' has prefix /8; a VPC needs /16 to /24; allowed: {VPC_EXAMPLE}",
    ("config/dev.toml: network.enable_nat: must be true or false, got 'yes'; "
     "allowed: false (NAT costs money; public subnets suffice)"),
    ("config/dev.toml: storage.deletion_policy: 'Snapshot' is not one of Retain, Delete; "
     'allowed: "Retain" (keeps data) or "Delete"'),
    ("config/dev.toml: build.image: 'aws/codebuild/standard:5.0' is deprecated by AWS (standard images before 7.0); "
     'allowed: "aws/codebuild/standard:8.0"'),
    ("config/dev.toml: github.colour: unknown key; "
     "allowed: one of: owner, repo, branch, source, connection_arn, token_secret_name"),
]
INVALID_TOML = "invalid_toml.toml"


def load_as(source: Path, environment: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Load ``source`` as ``config/<environment>.toml`` of a project at ``project_dir``, as the CLI would."""
    config = project_dir / "config"
    config.mkdir(exist_ok=True)
    shutil.copyfile(source, config / f"{environment}.toml")
    monkeypatch.chdir(project_dir)
    return settings.load(environment, config_dir=config)


def problems_of(source: Path, environment: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_as(source, environment, project_dir, monkeypatch)
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def test_every_fixture_is_paired_with_its_message():
    on_disk = {path.name for path in FIXTURES.glob("*.toml")}

    assert on_disk == set(BAD_SETTINGS) | {SEVERAL_PROBLEMS, INVALID_TOML}
    assert set(ENVIRONMENT_OF) <= set(BAD_SETTINGS)


@pytest.mark.parametrize("fixture", sorted(BAD_SETTINGS))
def test_bad_settings_file_reports_exactly_its_problem(fixture, tmp_path, monkeypatch):
    environment = ENVIRONMENT_OF.get(fixture, "dev")

    problems = problems_of(FIXTURES / fixture, environment, tmp_path, monkeypatch)

    assert problems == [BAD_SETTINGS[fixture]]


def test_every_problem_of_a_file_is_reported_together(tmp_path, monkeypatch):
    problems = problems_of(FIXTURES / SEVERAL_PROBLEMS, "dev", tmp_path, monkeypatch)

    assert len(problems) == 6
    assert problems == SEVERAL_PROBLEMS_LINES


def test_invalid_toml_names_the_file_and_the_parser_position(tmp_path, monkeypatch):
    text = (FIXTURES / INVALID_TOML).read_text(encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)

    problems = problems_of(FIXTURES / INVALID_TOML, "dev", tmp_path, monkeypatch)

    assert "(at line 3, column 10)" in str(parser.value)
    assert problems == [(f"config/dev.toml: not valid TOML ({parser.value}); "
                         'allowed: key = "value" lines under [section] headers')]


@pytest.mark.parametrize("environment", ["Dev", "development", "d", "dev-1"])
def test_environment_name_comes_from_the_file_name_and_is_checked(environment, tmp_path, monkeypatch):
    problems = problems_of(CONFIG / "dev.toml", environment, tmp_path, monkeypatch)

    assert problems == [
        (f"config/{environment}.toml: environment name {environment!r} (the file's name) must be 2-10 lowercase "
         "letters or digits, starting with a letter; allowed: dev, prod, staging2")
    ]


def test_unknown_environment_lists_the_available_ones(tmp_path, monkeypatch):
    load_as(CONFIG / "prod.toml", "prod", tmp_path, monkeypatch)
    load_as(CONFIG / "dev.toml", "dev", tmp_path, monkeypatch)

    with pytest.raises(SettingsError) as raised:
        settings.load("staging", config_dir=tmp_path / "config")

    assert raised.value.problems == [
        ("config/staging.toml: no such settings file for environment 'staging'; "
         "allowed: one of the files in config/ (dev, prod)")
    ]


def test_unknown_environment_in_the_shipped_config_folder(monkeypatch):
    monkeypatch.chdir(PROJECT)

    with pytest.raises(SettingsError) as raised:
        settings.load("qa")

    assert raised.value.problems == [
        ("config/qa.toml: no such settings file for environment 'qa'; "
         "allowed: one of the files in config/ (dev, local, prod)")
    ]


def test_a_file_outside_the_working_directory_is_named_by_its_full_path(tmp_path, monkeypatch):
    config = tmp_path / "elsewhere"
    config.mkdir()
    shutil.copyfile(FIXTURES / "region_format.toml", config / "dev.toml")
    monkeypatch.chdir(PROJECT)

    with pytest.raises(SettingsError) as raised:
        settings.load("dev", config_dir=config)

    assert raised.value.problems == [
        f"{config / 'dev.toml'}: region: 'US East (N. Virginia)' is not an AWS region name; allowed: \"us-east-1\""
    ]


# --- parse(): boundaries the fixtures do not pin -----------------------------------------------------------

def minimal(**overrides: object) -> dict:
    """The smallest valid settings: everything else takes its default."""
    data = {"project": "cicd-platform", "region": "eu-west-1",
            "github": {"owner": "example-org", "repo": "cicd-platform", "connection_arn": DEV_CONNECTION}}
    data.update(overrides)
    return data


def test_defaults_fill_every_optional_key():
    loaded = settings.parse(minimal(), "qa", "config/qa.toml")

    assert loaded == Settings(
        project="cicd-platform",
        environment="qa",
        region="eu-west-1",
        network=NetworkSettings(
            vpc_cidr="10.20.0.0/16",
            public_subnet_cidrs=("10.20.0.0/24", "10.20.1.0/24"),
            private_subnet_cidrs=("10.20.2.0/24", "10.20.3.0/24"),
            availability_zone_indexes=(0, 1),
            enable_nat=False,
        ),
        storage=StorageSettings(deletion_policy="Retain", noncurrent_version_expiration_days=30),
        build=BuildSettings(enable_codebuild=True, compute_type="BUILD_GENERAL1_SMALL",
                            image="aws/codebuild/standard:8.0", python_version="3.12",
                            log_retention_days=14, timeout_minutes=20),
        github=GitHubSettings(owner="example-org", repo="cicd-platform", branch="main",
                              source="codestar-connection", connection_arn=DEV_CONNECTION, token_secret_name=None),
        deploy=DeploySettings(stack_name="cicd-platform-qa", termination_protection=False),
    )


def test_required_keys_missing_are_each_reported():
    with pytest.raises(SettingsError) as raised:
        settings.parse({}, "qa", "config/qa.toml")

    assert raised.value.problems == [
        "config/qa.toml: project: is required; allowed: \"cicd-platform\" (3-20 lowercase letters, digits, hyphens)",
        "config/qa.toml: region: is required; allowed: \"us-east-1\"",
        "config/qa.toml: github.owner: is required; allowed: \"my-org\" (a GitHub user or organisation)",
        "config/qa.toml: github.repo: is required; allowed: \"cicd-platform\"",
        f"config/qa.toml: github.connection_arn: is required; allowed: {ARN_EXAMPLE}",
    ]


@pytest.mark.parametrize(("environment", "accepted"), [("stag", True), ("stage", False)])
def test_bucket_name_length_boundary(environment, accepted):
    project = "cicd-platform-github"  # 20 characters, the longest PROJECT_RE allows
    # The longest name the bucket can get: a 12-digit account, a 14-character region.
    longest_bucket = f"{project}-{environment}-artifacts-123456789012-ap-southeast-5"
    data = minimal(project=project)

    if accepted:
        assert settings.parse(data, environment, "config/x.toml").project == project
        assert len(longest_bucket) == 63
    else:
        with pytest.raises(SettingsError) as raised:
            settings.parse(data, environment, "config/x.toml")
        assert len(longest_bucket) == 64
        assert raised.value.problems == [
            (f"config/x.toml: project: 'cicd-platform-github' with environment {environment!r} makes an artifact "
             "bucket name of up to 64 characters (S3 allows 63); allowed: a project name of at most 19 characters")
        ]


def test_a_boolean_is_not_a_number():
    with pytest.raises(SettingsError) as raised:
        settings.parse(minimal(build={"log_retention_days": True}), "qa", "config/qa.toml")

    assert raised.value.problems == [
        f"config/qa.toml: build.log_retention_days: must be a whole number, got True; allowed: {LOG_EXAMPLE}"
    ]


def test_subnets_are_computed_from_the_vpc_and_prefix():
    data = minimal(network={"vpc_cidr": "10.50.0.0/20", "subnet_prefix": 22, "availability_zone_indexes": [2, 0]})

    network = settings.parse(data, "qa", "config/qa.toml").network

    assert network.public_subnet_cidrs == ("10.50.0.0/22", "10.50.4.0/22")
    assert network.private_subnet_cidrs == ("10.50.8.0/22", "10.50.12.0/22")
    assert network.availability_zone_indexes == (2, 0)


def test_explicit_public_subnets_keep_their_cidrs_and_private_ones_take_the_next_free_blocks():
    data = minimal(network={"vpc_cidr": "10.60.0.0/16", "subnet_prefix": 24,
                            "public_subnet_cidrs": ["10.60.0.0/25", "10.60.0.128/25"]})

    network = settings.parse(data, "qa", "config/qa.toml").network

    assert network.public_subnet_cidrs == ("10.60.0.0/25", "10.60.0.128/25")
    assert network.private_subnet_cidrs == ("10.60.1.0/24", "10.60.2.0/24")


def test_secretsmanager_token_mode_needs_no_connection():
    data = minimal(github={"owner": "example-org", "repo": "cicd-platform", "source": "secretsmanager-token",
                           "token_secret_name": "github/token"})

    github = settings.parse(data, "qa", "config/qa.toml").github

    assert (github.source, github.connection_arn, github.token_secret_name) == (
        "secretsmanager-token", None, "github/token")


def test_legacy_codestar_connection_arns_are_accepted():
    legacy = "arn:aws:codestar-connections:eu-west-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
    data = minimal(github={"owner": "example-org", "repo": "cicd-platform", "connection_arn": legacy})

    assert settings.parse(data, "qa", "config/qa.toml").github.connection_arn == legacy


# --- the shipped configs ---------------------------------------------------------------------------------

def test_local_settings_load_as_written():
    loaded = settings.load("local")

    assert loaded == Settings(
        project="cicd-platform",
        environment="local",
        region="us-east-1",
        network=NetworkSettings(
            vpc_cidr="10.20.0.0/16",
            public_subnet_cidrs=("10.20.0.0/24", "10.20.1.0/24"),
            private_subnet_cidrs=("10.20.2.0/24", "10.20.3.0/24"),
            availability_zone_indexes=(0, 1),
            enable_nat=False,
        ),
        storage=StorageSettings(deletion_policy="Delete", noncurrent_version_expiration_days=7),
        build=BuildSettings(enable_codebuild=False, compute_type="BUILD_GENERAL1_SMALL",
                            image="aws/codebuild/standard:8.0", python_version="3.12",
                            log_retention_days=7, timeout_minutes=20),
        github=GitHubSettings(owner="example-org", repo="cicd-platform", branch="main",
                              source="codestar-connection", connection_arn=LOCAL_CONNECTION, token_secret_name=None),
        deploy=DeploySettings(stack_name="cicd-platform-local", termination_protection=False),
    )


def test_dev_settings_load_as_written():
    loaded = settings.load("dev")

    assert loaded == Settings(
        project="cicd-platform",
        environment="dev",
        region="us-east-1",
        network=NetworkSettings(
            vpc_cidr="10.30.0.0/16",
            public_subnet_cidrs=("10.30.0.0/24", "10.30.1.0/24"),
            private_subnet_cidrs=("10.30.2.0/24", "10.30.3.0/24"),
            availability_zone_indexes=(0, 1),
            enable_nat=False,
        ),
        storage=StorageSettings(deletion_policy="Retain", noncurrent_version_expiration_days=30),
        build=BuildSettings(enable_codebuild=True, compute_type="BUILD_GENERAL1_SMALL",
                            image="aws/codebuild/standard:8.0", python_version="3.12",
                            log_retention_days=30, timeout_minutes=20),
        github=GitHubSettings(owner="example-org", repo="cicd-platform", branch="main",
                              source="codestar-connection", connection_arn=DEV_CONNECTION, token_secret_name=None),
        deploy=DeploySettings(stack_name="cicd-platform-dev", termination_protection=False),
    )


def test_prod_settings_load_as_written():
    loaded = settings.load("prod")

    assert loaded == Settings(
        project="cicd-platform",
        environment="prod",
        region="us-east-1",
        network=NetworkSettings(
            vpc_cidr="10.40.0.0/16",
            public_subnet_cidrs=("10.40.0.0/24", "10.40.1.0/24"),
            private_subnet_cidrs=("10.40.2.0/24", "10.40.3.0/24"),
            availability_zone_indexes=(0, 1),
            enable_nat=False,
        ),
        storage=StorageSettings(deletion_policy="Retain", noncurrent_version_expiration_days=90),
        build=BuildSettings(enable_codebuild=True, compute_type="BUILD_GENERAL1_MEDIUM",
                            image="aws/codebuild/standard:8.0", python_version="3.12",
                            log_retention_days=365, timeout_minutes=30),
        github=GitHubSettings(owner="example-org", repo="cicd-platform", branch="main",
                              source="secretsmanager-token", connection_arn=None,
                              token_secret_name="github/cicd-platform-token"),
        deploy=DeploySettings(stack_name="cicd-platform-prod", termination_protection=True),
    )


def test_shipped_environments_are_exactly_local_dev_prod():
    assert settings.available_environments() == ["dev", "local", "prod"]


def test_settings_are_immutable():
    loaded = settings.load("dev")

    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.project = "other"  # type: ignore[misc]
