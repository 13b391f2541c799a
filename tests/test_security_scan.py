"""checkov over every built template: no failed check, and every exception says why.

checkov runs from its own virtualenv (``.venv-scan``, ``make scan-venv``): it pins its own boto3,
which conflicts with requirements.txt. One process scans all of ``build/`` (about 4 s).
A deliberate exception is a suppression in the resource's ``Metadata`` —
``{"checkov": {"skip": [{"id": "CKV_AWS_18", "comment": "why"}]}}`` — set in templates_src/stacks/.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from templates_src.render import BUILD_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKOV = REPO_ROOT / ".venv-scan" / "bin" / "checkov"
# The same command as `make scan`, with JSON out. --skip-download: no calls to the vendor's
# platform (offline, and nothing to download for CloudFormation); packaged.json is deploy.py's
# copy of root.json with S3 URLs, not a separate template.
COMMAND = [str(CHECKOV), "--directory", str(BUILD_DIR), "--framework", "cloudformation", "--output", "json",
           "--skip-download", "--skip-path", r"packaged\.json$"]


def _templates() -> dict[Path, dict]:
    return {
        path: document
        for path in sorted(BUILD_DIR.glob("*/*.json"))
        if path.name not in ("manifest.json", "packaged.json")
        and "Resources" in (document := json.loads(path.read_text(encoding="utf-8")))
    }


@pytest.fixture(scope="module")
def report() -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make scan-venv` (checkov lives in its own virtualenv, "
                    "pinned in requirements-scan.txt)")
    scan = subprocess.run(COMMAND, capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT)
    # Exit 1 means failed checks, which the tests below report readably; anything else is a crash.
    assert scan.returncode in (0, 1), f"checkov exited {scan.returncode}:\n{scan.stderr[-3000:]}"
    output = json.loads(scan.stdout)
    reports = output if isinstance(output, list) else [output]
    (cloudformation,) = [r for r in reports if r.get("check_type") == "cloudformation"] or [None]
    assert cloudformation is not None, f"checkov scanned no CloudFormation template in {BUILD_DIR}:\n{scan.stdout}"
    return cloudformation


def test_checkov_finds_no_failed_check(report):
    failed = report["results"]["failed_checks"]
    lines = [
        f"  build{check['file_path']}: {check['resource']}: {check['check_id']} {check['check_name']}"
        + (f"\n    {check['guideline']}" if check.get("guideline") else "")
        for check in sorted(failed, key=lambda c: (c["file_path"], c["resource"], c["check_id"]))
    ]
    assert not failed, (
        f"checkov: {len(failed)} failed check(s). Fix the template, or if the exception is deliberate add "
        '{"checkov": {"skip": [{"id": ..., "comment": "why"}]}} to the resource\'s Metadata:\n'
        + "\n".join(lines))


def test_checkov_scanned_every_resource_of_every_template(report):
    templates = _templates()
    assert {path.parent.name for path in templates} == {path.name for path in BUILD_DIR.iterdir() if path.is_dir()}
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] == sum(len(t["Resources"]) for t in templates.values())
    assert report["summary"]["passed"] > 0


def _suppressions() -> list[tuple[Path, str, dict]]:
    return [
        (path, logical_id, skip)
        for path, template in _templates().items()
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def test_every_suppression_names_a_check_and_says_why():
    suppressions = _suppressions()
    assert suppressions, "expected the documented suppressions (see templates_src/stacks/)"
    for path, logical_id, skip in suppressions:
        where = f"{path.relative_to(REPO_ROOT)}: {logical_id}"
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), f"{where}: suppression without a check id"
        assert len(skip.get("comment", "").split()) >= 5, f"{where}: {skip['id']} suppressed without a reason"


def test_every_suppression_is_still_needed(report):
    used = {(check["file_path"], check["resource"].split(".")[-1], check["check_id"])
            for check in report["results"]["skipped_checks"]}
    for path, logical_id, skip in _suppressions():
        key = ("/" + path.relative_to(BUILD_DIR).as_posix(), logical_id, skip["id"])
        assert key in used, f"{key}: checkov no longer flags this; remove the suppression"


def test_scan_venv_runs_the_pinned_checkov(report):
    (pin,) = re.findall(r"^checkov==(\S+)", (REPO_ROOT / "requirements-scan.txt").read_text(), re.MULTILINE)
    installed = report["summary"]["checkov_version"]
    assert installed == pin, (
        f".venv-scan has checkov {installed}, requirements-scan.txt pins {pin}: run `make scan-venv`")
