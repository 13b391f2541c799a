"""deployer/manifest.py: reading build/ENV/, and the --param pairs checked against the root's parameters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deployer import manifest
from deployer.errors import UsageError

BUILT = Path(__file__).resolve().parents[2] / "build"


@pytest.fixture(scope="module")
def local() -> manifest.Build:
    return manifest.load("local", BUILT)


@pytest.fixture
def build_copy(tmp_path: Path) -> Path:
    """A copy of build/local/ to break; returns the build folder holding it."""
    shutil.copytree(BUILT / "local", tmp_path / "local", ignore=shutil.ignore_patterns("packaged.json"))
    return tmp_path


def test_load_reads_the_manifest_and_the_root(local):
    assert (local.project, local.environment, local.region, local.stack_name) == (
        "cicd-platform", "local", "us-east-1", "cicd-platform-local")
    assert local.default_parameters == {"EnableCodeBuild": "false", "EnableNat": "false", "Environment": "local"}
    assert local.children == {"BuildStack": "build.json", "IamStack": "iam.json", "NetworkStack": "network.json",
                              "PipelineStack": "pipeline.json", "StorageStack": "storage.json"}
    assert local.root["Resources"]["NetworkStack"]["Properties"]["TemplateURL"] == "network.json"
    assert local.child_template("StorageStack")["Resources"]["ArtifactBucket"]["Type"] == "AWS::S3::Bucket"


def test_missing_build_says_how_to_make_it(tmp_path):
    with pytest.raises(UsageError) as raised:
        manifest.load("local", tmp_path)

    assert str(raised.value) == (
        f"no build for environment 'local' ({tmp_path}/local/manifest.json is missing); "
        "run `make build ENV=local` (or `python -m templates_src --env local`) first")


def test_missing_build_names_the_environments_that_are_built(build_copy):
    with pytest.raises(UsageError) as raised:
        manifest.load("dev", build_copy)

    assert str(raised.value) == (
        f"no build for environment 'dev' ({build_copy}/dev/manifest.json is missing); "
        "run `make build ENV=dev` (or `python -m templates_src --env dev`) first; built environments: local")


def test_manifest_without_an_entry_says_rebuild(build_copy):
    path = build_copy / "local" / "manifest.json"
    data = json.loads(path.read_text())
    del data["stack_name"]
    path.write_text(json.dumps(data))

    with pytest.raises(UsageError) as raised:
        manifest.load("local", build_copy)

    assert str(raised.value) == (f"{path} has no 'stack_name' entry (written by another version of the generator?); "
                                 "rebuild it with `make build ENV=local`")


def test_missing_root_template_says_rebuild(build_copy):
    (build_copy / "local" / "root.json").unlink()

    with pytest.raises(UsageError) as raised:
        manifest.load("local", build_copy)

    assert str(raised.value) == (f"{build_copy}/local/root.json is missing: the build is incomplete; "
                                 "rebuild it with `make build ENV=local`")


def test_truncated_manifest_says_rebuild(build_copy):
    path = build_copy / "local" / "manifest.json"
    path.write_text('{"project": ')

    with pytest.raises(UsageError) as raised:
        manifest.load("local", build_copy)

    assert str(raised.value) == (f"{path} is not valid JSON (Expecting value: line 1 column 13 (char 12)); "
                                 "rebuild it with `make build ENV=local`")


def test_parameters_default_to_the_build_and_pairs_override_them(local):
    assert manifest.parse_parameters(local, []) == local.default_parameters
    assert manifest.parse_parameters(local, ["EnableCodeBuild=true", "EnableNat=true", "EnableNat=false"]) == {
        "EnableCodeBuild": "true", "EnableNat": "false", "Environment": "local"}


@pytest.mark.parametrize(("pair", "message"), [
    ("Colour=blue", "--param Colour: the root stack has no such parameter; "
                    "allowed: EnableCodeBuild, EnableNat, Environment, ProjectName"),
    ("enablenat=true", "--param enablenat: the root stack has no such parameter; "
                       "allowed: EnableCodeBuild, EnableNat, Environment, ProjectName"),
    ("EnableNat", "--param 'EnableNat' is not KEY=VALUE (e.g. --param EnableCodeBuild=false)"),
    ("=true", "--param '=true' is not KEY=VALUE (e.g. --param EnableCodeBuild=false)"),
    ("EnableNat=yes", "--param EnableNat=yes: not allowed; allowed: true, false"),
    ("EnableNat=", "--param EnableNat=: not allowed; allowed: true, false"),
    ("Environment=prod", "--param Environment=prod: not allowed; allowed: local"),
])
def test_bad_parameter_is_refused_with_what_is_allowed(local, pair, message):
    with pytest.raises(UsageError) as raised:
        manifest.parse_parameters(local, [pair])

    assert str(raised.value) == message


def test_every_bad_parameter_is_reported_at_once(local):
    with pytest.raises(UsageError) as raised:
        manifest.parse_parameters(local, ["EnableNat=yes", "EnableCodeBuild=true", "Colour"])

    assert str(raised.value).splitlines() == [
        "--param EnableNat=yes: not allowed; allowed: true, false",
        "--param 'Colour' is not KEY=VALUE (e.g. --param EnableCodeBuild=false)",
    ]
