"""The README's first command, as a new user runs it: `make demo`, again (idempotent), `make demo-down`."""

from __future__ import annotations

import subprocess

import pytest

from tools.localstack import PID_PATH, PROJECT, free_port, running_pid, stop

pytestmark = pytest.mark.localstack


def make(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *arguments], cwd=PROJECT, capture_output=True, text=True, timeout=600,
                          check=False, stdin=subprocess.DEVNULL)


def test_make_demo_deploys_then_reports_no_changes_then_tears_down():
    if running_pid(PID_PATH) is not None:
        pytest.skip("a LocalStack started by `make local-up` runs in this checkout; `make demo` would reuse it "
                    "and `make demo-down` would stop it (CI starts from a clean clone, where this runs)")
    port = str(free_port())
    try:
        first = make("demo", f"PORT={port}")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "cfn-lint: 6 templates, no findings" in first.stdout
        assert f"is up at http://127.0.0.1:{port}" in first.stdout
        assert "cicd-platform-local: CREATE_COMPLETE in" in first.stdout
        assert "EnableCodeBuild=false on LocalStack" in first.stdout
        for output in ("VpcId", "PublicSubnetIds", "ArtifactBucketName", "CodeBuildRoleArn", "PipelineRoleArn"):
            assert f"  {output} " in first.stdout, output
        assert f"LOCALSTACK_HOST=127.0.0.1:{port} .venv-localstack/bin/awslocal" in first.stdout
        assert "Tear down:    make demo-down" in first.stdout

        again = make("demo", f"PORT={port}")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "LocalStack is already running" in again.stdout
        assert "no changes: cicd-platform-local already runs these templates and parameters" in again.stdout

        down = make("demo-down", f"PORT={port}")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "cicd-platform-local: DELETE_COMPLETE" in down.stdout
        assert "LocalStack stopped." in down.stdout
        assert running_pid(PID_PATH) is None
    finally:
        stop(PID_PATH)  # never leave a stray server, whatever failed above
