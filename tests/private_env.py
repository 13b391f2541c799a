"""Private copies of the `local` environment for the emulator tests, and deploy.py as a subprocess.

Each copy gets a project name of its own: the artifact bucket is named after the project, and
LocalStack keeps every instance's S3 object data in /tmp/localstack-s3-storage/<bucket>, so shared
names would collide with other test runs on the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def private_build(folder: Path, project: str, *replacements: tuple[str, str]) -> Path:
    """`python -m templates_src --env local` for config/local.toml with another project name (and any
    other text replacements) into ``folder/build``; the settings file is ``folder/config/local.toml``."""
    text = (PROJECT / "config" / "local.toml").read_text(encoding="utf-8")
    text = re.sub(r'^project = ".*"$', f'project = "{project}"', text, count=1, flags=re.MULTILINE)
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "local.toml").write_text(text, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "templates_src", "--env", "local", "--config-dir", str(config),
                    "--out", str(folder / "build"), "--quiet"], cwd=PROJECT, check=True, timeout=120)
    return folder / "build"


def deploy_py(endpoint: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "deploy.py", *arguments], cwd=PROJECT,
                          env={**os.environ, "AWS_ENDPOINT_URL": endpoint}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300, check=False)


def described(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
