"""templates_src/__main__.py: the command a user runs, as a real process.

The CLI reads settings only from the project's ``config/`` (there is no option to point it elsewhere),
so tests with broken settings run a copy of the package and its config in a temporary project folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from templates_src import settings
from templates_src.render import render, serialize

PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bad_settings"
TEMPLATES = ["root.json", "network.json", "storage.json", "iam.json", "build.json", "pipeline.json"]


def run(*arguments: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "templates_src", *arguments],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The generator and the shipped settings in a folder of their own (build/ not included)."""
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PROJECT / "templates_src", copy / "templates_src", ignore=ignore)
    shutil.copytree(PROJECT / "config", copy / "config")
    return copy


def test_env_local_writes_every_file_and_says_what_it_wrote(tmp_path):
    out = tmp_path / "out"

    result = run("--env", "local", "--out", str(out))

    assert (result.returncode, result.stderr) == (0, "")
    folder = out / "local"
    written = sorted(path.name for path in folder.iterdir())
    assert set(TEMPLATES) | {"manifest.json"} <= set(written)
    lines = result.stdout.splitlines()
    assert lines[0] == f"local: wrote {len(written)} files to {folder}/"
    listed = {line.split()[0]: line for line in lines[1:]}
    assert sorted(listed) == written
    for name in TEMPLATES:
        resources = len(json.loads((folder / name).read_text(encoding="utf-8"))["Resources"])
        assert re.fullmatch(rf"  {re.escape(name)} +{resources} resources", listed[name]), listed[name]
    assert listed["manifest.json"].strip() == "manifest.json"


def test_written_files_are_what_the_library_renders(tmp_path):
    run("--env", "dev", "--out", str(tmp_path))

    for name, document in render(settings.load("dev")).items():
        assert (tmp_path / "dev" / name).read_text(encoding="utf-8") == serialize(document)


def test_quiet_prints_nothing_on_success(tmp_path):
    result = run("--env", "prod", "--quiet", "--out", str(tmp_path))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "prod" / "root.json").is_file()


def test_bad_settings_exit_2_with_every_problem_one_line_each_and_nothing_written(project_copy):
    shutil.copyfile(FIXTURES / "several_problems.toml", project_copy / "config" / "dev.toml")
    out = project_copy / "out"

    result = run("--env", "dev", "--out", str(out), cwd=project_copy)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid settings (6 problems); nothing was written:"
    assert [line[:2] for line in lines[1:]] == ["  "] * 6
    assert [line.strip().split(": ")[:2] for line in lines[1:]] == [
        ["config/dev.toml", "project"],
        ["config/dev.toml", "network.vpc_cidr"],
        ["config/dev.toml", "network.enable_nat"],
        ["config/dev.toml", "storage.deletion_policy"],
        ["config/dev.toml", "build.image"],
        ["config/dev.toml", "github.colour"],
    ]
    assert lines[5] == ("  config/dev.toml: build.image: 'aws/codebuild/standard:5.0' is deprecated by AWS "
                        "(standard images before 7.0); allowed: \"aws/codebuild/standard:8.0\"")
    assert not out.exists()
    assert not (project_copy / "build").exists()


def test_one_bad_environment_stops_all_of_them_before_anything_is_written(project_copy):
    shutil.copyfile(FIXTURES / "image_deprecated.toml", project_copy / "config" / "prod.toml")
    out = project_copy / "out"

    result = run("--all", "--out", str(out), cwd=project_copy)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: invalid settings (1 problem); nothing was written:",
        ("  config/prod.toml: build.image: 'aws/codebuild/standard:5.0' is deprecated by AWS "
         "(standard images before 7.0); allowed: \"aws/codebuild/standard:8.0\""),
    ]
    assert not out.exists()


def test_invalid_toml_exits_2_without_a_traceback(project_copy):
    shutil.copyfile(FIXTURES / "invalid_toml.toml", project_copy / "config" / "dev.toml")

    result = run("--env", "dev", "--out", str(project_copy / "out"), cwd=project_copy)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[1].startswith("  config/dev.toml: not valid TOML (Invalid value (at line 3")


def test_unknown_environment_lists_the_available_ones(tmp_path):
    result = run("--env", "staging", "--out", str(tmp_path / "out"))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: invalid settings (1 problem); nothing was written:",
        ("  config/staging.toml: no such settings file for environment 'staging'; "
         "allowed: one of the files in config/ (dev, local, prod)"),
    ]
    assert not (tmp_path / "out").exists()


def test_an_environment_is_required():
    result = run()

    assert result.returncode == 2
    assert "error: one of the arguments --env --all is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_lint_of_a_clean_environment_exits_0(tmp_path):
    result = run("--env", "local", "--lint", "--out", str(tmp_path))

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == "cfn-lint: 6 templates, no findings"
