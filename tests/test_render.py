"""templates_src/render.py: deterministic files, the manifest, stale-file removal, and build/ kept in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from templates_src import settings
from templates_src.render import BUILD_DIR, MANIFEST, manifest, render, serialize, write

PROJECT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = settings.available_environments()
FILES = ["root.json", "network.json", "storage.json", "iam.json", "build.json", "pipeline.json", "manifest.json"]


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_render_produces_root_children_and_manifest():
    documents = render(settings.load("dev"))

    assert list(documents) == FILES
    assert all("Resources" in documents[name] for name in FILES if name != MANIFEST)
    assert "Resources" not in documents[MANIFEST]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_two_renders_are_identical(env):
    first = {name: serialize(document) for name, document in render(settings.load(env)).items()}
    second = {name: serialize(document) for name, document in render(settings.load(env)).items()}

    assert first == second


def test_serialize_sorts_keys_indents_and_ends_with_a_newline():
    text = serialize({"b": 1, "a": {"d": "é", "c": [2]}})

    assert text == '{\n "a": {\n  "c": [\n   2\n  ],\n  "d": "é"\n },\n "b": 1\n}\n'


def test_two_writes_are_byte_identical(tmp_path):
    loaded = settings.load("prod")

    write(render(loaded), tmp_path / "one")
    write(render(loaded), tmp_path / "two")

    assert contents(tmp_path / "one") == contents(tmp_path / "two")
    assert sorted(contents(tmp_path / "one")) == sorted(FILES)


def test_two_cli_runs_are_byte_identical(tmp_path):
    """Separate processes with different hash seeds: nothing may depend on set or dict-hash order."""
    for run, seed in (("one", "1"), ("two", "2")):
        result = subprocess.run(
            [sys.executable, "-m", "templates_src", "--all", "--quiet", "--out", str(tmp_path / run)],
            cwd=PROJECT, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120, check=False,
        )
        assert (result.returncode, result.stderr) == (0, "")

    for env in ENVIRONMENTS:
        assert contents(tmp_path / "one" / env) == contents(tmp_path / "two" / env)
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == ENVIRONMENTS


def test_write_reports_every_file_with_its_resource_count(tmp_path):
    documents = render(settings.load("local"))

    written = write(documents, tmp_path)

    assert [(path, count) for path, count in written] == [
        (tmp_path / name, len(documents[name]["Resources"]) if name != MANIFEST else None) for name in FILES]
    for path, _ in written:
        assert path.read_text(encoding="utf-8") == serialize(documents[path.name])


def test_write_removes_stale_templates_but_keeps_packaged_and_other_files(tmp_path):
    (tmp_path / "old-child.json").write_text("{}\n")
    (tmp_path / "packaged.json").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine\n")

    write(render(settings.load("local")), tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*FILES, "packaged.json", "notes.txt"])
    assert (tmp_path / "packaged.json").read_text() == "{}\n"


def test_write_leaves_unchanged_files_untouched(tmp_path):
    documents = render(settings.load("local"))
    write(documents, tmp_path)
    old = 1_000_000_000
    for path in tmp_path.iterdir():
        os.utime(path, (old, old))
    (tmp_path / "root.json").write_text("{}\n")

    write(documents, tmp_path)

    assert {path.name for path in tmp_path.iterdir() if path.stat().st_mtime != old} == {"root.json"}
    assert (tmp_path / "root.json").read_text(encoding="utf-8") == serialize(documents["root.json"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_committed_build_matches_a_fresh_build(env):
    """build/ is generated, never hand-edited: regenerate with `python -m templates_src --all`."""
    documents = render(settings.load(env))
    folder = BUILD_DIR / env
    committed = {path.name for path in folder.glob("*.json")} - {"packaged.json"}

    assert committed == set(documents)
    for name, document in documents.items():
        assert (folder / name).read_text(encoding="utf-8") == serialize(document), (
            f"build/{env}/{name} is stale: run `python -m templates_src --all`")


def test_build_holds_exactly_the_shipped_environments():
    assert sorted(path.name for path in BUILD_DIR.iterdir() if path.is_dir()) == ENVIRONMENTS


def test_manifest_of_local():
    assert manifest(settings.load("local")) == {
        "project": "cicd-platform",
        "environment": "local",
        "region": "us-east-1",
        "stack_name": "cicd-platform-local",
        "termination_protection": False,
        "bucket_deletion_policy": "Delete",
        "root_template": "root.json",
        "child_templates": {"NetworkStack": "network.json", "StorageStack": "storage.json", "IamStack": "iam.json",
                            "BuildStack": "build.json", "PipelineStack": "pipeline.json"},
        "parameters": {"Environment": "local", "EnableCodeBuild": "false", "EnableNat": "false"},
        "github": {
            "source": "codestar-connection",
            "repository": "example-org/cicd-platform",
            "branch": "main",
            "connection_arn": "arn:aws:codeconnections:us-east-1:000000000000:connection/"
                              "00000000-0000-0000-0000-000000000000",
            "token_secret_name": None,
        },
    }


def test_manifest_of_prod():
    document = manifest(settings.load("prod"))

    assert (document["stack_name"], document["termination_protection"], document["bucket_deletion_policy"]) == (
        "cicd-platform-prod", True, "Retain")
    assert document["parameters"] == {"Environment": "prod", "EnableCodeBuild": "true", "EnableNat": "false"}
    assert document["github"] == {"source": "secretsmanager-token", "repository": "example-org/cicd-platform",
                                  "branch": "main", "connection_arn": None,
                                  "token_secret_name": "github/cicd-platform-token"}


def test_manifest_parameters_match_the_root_parameters():
    """The deployer passes these; each must be a root parameter and follow the settings."""
    loaded = settings.load("dev")
    documents = render(loaded)

    root_parameters = documents["root.json"]["Parameters"]
    for name, value in documents[MANIFEST]["parameters"].items():
        assert root_parameters[name]["Default"] == value
    assert documents[MANIFEST]["child_templates"] == {
        name: resource["Properties"]["TemplateURL"] for name, resource in documents["root.json"]["Resources"].items()}


def test_manifest_is_plain_json():
    assert json.loads(serialize(manifest(settings.load("dev")))) == manifest(settings.load("dev"))
