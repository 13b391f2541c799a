"""tools/bench.py: the measuring, the private build and the table (the full bench takes minutes: `make bench`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tools import bench

ALLOCATE_100_MIB = "b = bytearray(100 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"


def test_run_reports_each_childs_own_peak_memory():
    # A forked child starts with its parent's resident pages in its peak, so this runs in a fresh
    # small interpreter, as the bench does, not inside pytest's large process.
    probe = (
        "import os, sys\n"
        "from tools import bench\n"
        f"big, _ = bench.run([sys.executable, '-c', {ALLOCATE_100_MIB!r}], dict(os.environ))\n"
        "small, output = bench.run([sys.executable, '-c', 'print(1)'], dict(os.environ))\n"
        "print(big.max_rss_mib, small.max_rss_mib, big.seconds > 0, output == '1\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=bench.PROJECT, capture_output=True, text=True,
                            check=True)
    big, small, timed, captured = result.stdout.split()

    assert float(big) >= 100
    assert float(small) < 60  # not the largest child so far, as getrusage(RUSAGE_CHILDREN) would say
    assert timed == "True" and captured == "True"


def test_run_shows_the_failing_command_and_its_output():
    with pytest.raises(bench.BenchError, match=r"(?s)exit code 3.*went wrong"):
        bench.run([sys.executable, "-c", "import sys; print('went wrong'); sys.exit(3)"], dict(os.environ))


def test_run_checks_the_expected_output():
    with pytest.raises(bench.BenchError, match="no 'CREATE_COMPLETE' in its output"):
        bench.run([sys.executable, "-c", "print('no changes')"], dict(os.environ), expect="CREATE_COMPLETE")


def test_the_private_build_has_its_own_project_name(tmp_path):
    ws = bench.make_workspace(tmp_path)

    bench.run(bench.generate_command(ws), ws.env)

    assert ws.project.startswith("bench-")
    assert ws.manifest["project"] == ws.project
    assert [path.name for path in ws.templates()][0] == "root.json"
    assert len(ws.templates()) == 6
    assert "AWS_PROFILE" not in ws.env


def test_table_shows_medians_and_ratios_and_skips_unmeasured_rows(capsys):
    results = bench.new_results(6)
    results["lint_api"].values.extend([1.0, 2.0, 9.0])
    results["generate_lint"].values.extend([3.0])
    results["lint_cli"].values.extend([6.0, 7.0, 5.0])

    bench.print_table(results)

    lines = capsys.readouterr().out.splitlines()
    lint_cli = next(line for line in lines if line.startswith("lint 6 templates: one cfn-lint process each"))
    assert re.split(r"\s{2,}", lint_cli)[1:] == ["3", "6.00 s", "5.00 s", "7.00 s", "3.0× API, 2.0× generate+lint"]
    assert not any(line.startswith("deploy.py") for line in lines)
