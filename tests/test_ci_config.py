"""CI and pre-commit configuration: valid YAML that runs only real Makefile targets.

Neither GitHub Actions nor pre-commit can run here, so this checks what can be checked offline:
the files parse, every ``make X`` they run is a target of the Makefile, the SARIF CI uploads is the
one ``make lint`` writes, the pre-commit ruff is the pinned ruff, and ``.ci/run`` runs the
README's test command.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
PRE_COMMIT = REPO_ROOT / ".pre-commit-config.yaml"
CI_RUN = REPO_ROOT / ".ci" / "run"
README = REPO_ROOT / "README.md"


def makefile_targets() -> set[str]:
    """The Makefile's targets, from make's own database (``make -pRrq``) where make exists."""
    if shutil.which("make"):
        database = subprocess.run(["make", "-pRrq", "-f", "Makefile"], cwd=REPO_ROOT, capture_output=True,
                                  text=True, timeout=60, check=False).stdout.splitlines()
        return {
            match[1]
            for previous, line in zip(["", *database], database, strict=False)
            if previous != "# Not a target:" and (match := re.match(r"^([A-Za-z0-9_.-]+):(?!=)", line))
        }
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return {name for names in re.findall(r"^([A-Za-z0-9_. -]+):(?!=)", text, re.MULTILINE) for name in names.split()}


def make_goals(command: str) -> list[list[str]]:
    """The goals of every ``make`` in a shell command: ``make lint SARIF=x`` → [["lint"]]."""
    goals = []
    for line in command.splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            if words and words[0] == "make":
                goals.append([word for word in words[1:] if "=" not in word and not word.startswith("-")])
    return goals


def make_variables(command: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(command) if re.match(r"^[A-Z_]+=", word))


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pre_commit() -> dict:
    return yaml.safe_load(PRE_COMMIT.read_text(encoding="utf-8"))


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflow_runs_on_push_and_pull_request(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request"} <= set(triggers)


def test_workflow_sets_up_the_project_python(workflow):
    steps = _steps(workflow)
    assert any(step.get("uses", "").startswith("actions/checkout@") for step in steps)
    (setup,) = [step for step in steps if step.get("uses", "").startswith("actions/setup-python@")]
    assert str(setup["with"]["python-version"]) == "3.11"


def test_workflow_runs_lint_scan_and_test_through_make(workflow):
    targets = makefile_targets()
    goals = [goal for step in _steps(workflow) if "run" in step for goals in make_goals(step["run"])
             for goal in goals]
    assert {"lint", "scan", "test"} <= set(goals), f"CI should run make lint, scan and test; runs {goals}"
    missing = sorted(set(goals) - targets)
    assert not missing, f"{WORKFLOW.relative_to(REPO_ROOT)} runs make {missing}, which the Makefile does not define"


def test_workflow_uploads_the_sarif_that_make_lint_writes(workflow):
    steps = _steps(workflow)
    (lint,) = [step for step in steps if "run" in step and ["lint"] in make_goals(step["run"])]
    sarif = make_variables(lint["run"]).get("SARIF")
    assert sarif, "make lint in CI should be given SARIF=path"
    (upload,) = [step for step in steps if step.get("uses", "").startswith("github/codeql-action/upload-sarif@")]
    assert upload["with"]["sarif_file"] == sarif
    if shutil.which("make"):  # and the Makefile really hands the path to the generator
        dry_run = subprocess.run(["make", "-n", "lint", f"SARIF={sarif}"], cwd=REPO_ROOT, capture_output=True,
                                 text=True, timeout=60, check=False).stdout
        assert f"--sarif {sarif}" in dry_run, f"`make lint SARIF={sarif}` does not pass --sarif:\n{dry_run}"
    job = next(job for job in workflow["jobs"].values() if upload in job["steps"])
    assert job["permissions"]["security-events"] == "write"
    assert "cancelled()" in upload.get("if", ""), "upload the findings also when lint failed"


def test_pre_commit_runs_ruff_pinned_like_the_project_and_make_lint(pre_commit):
    repos = {repo["repo"]: repo for repo in pre_commit["repos"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    (pin,) = re.findall(r"^ruff==(\S+)", (REPO_ROOT / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert ruff["rev"] == f"v{pin}"
    assert [hook["id"] for hook in ruff["hooks"]] == ["ruff-check"]  # lint only: no ruff-format

    targets = makefile_targets()
    local = list(repos["local"]["hooks"])
    goals = [goal for hook in local for goals in make_goals(hook["entry"]) for goal in goals]
    assert "lint" in goals
    missing = sorted(set(goals) - targets)
    assert not missing, f"{PRE_COMMIT.relative_to(REPO_ROOT)} runs make {missing}, which the Makefile does not define"
    assert all(hook.get("pass_filenames") is False for hook in local), "make takes no file names"


def test_make_goal_parsing():
    assert make_goals("make lint SARIF=a.sarif JUNIT=b.xml") == [["lint"]]
    assert make_goals("make -j2 venv && make test  # comment") == [["venv"], ["test"]]
    assert make_goals("git diff --exit-code -- build/") == []


def _readme_test_command() -> str | None:
    """The test command the README shows: a line of a code block that runs ``make test`` or pytest."""
    if not README.exists():
        return None
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    for line in (line.strip().removeprefix("$ ") for block in blocks for line in block.splitlines()):
        if re.match(r"^(make test\b|.*\bpytest\b)", line):
            return line.split("#")[0].strip()
    return None


def test_ci_run_runs_the_readme_test_command():
    if not CI_RUN.exists():
        pytest.skip(".ci/run does not exist yet (another engineer writes it); nothing to compare")
    command = _readme_test_command()
    if command is None:
        pytest.skip("README.md shows no test command yet (`make test` or pytest in a code block)")
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert command in lines, f".ci/run does not run the README's test command {command!r} as a line of its own"
