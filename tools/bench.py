#!/usr/bin/env python3
"""``make bench``: time generate, lint and deploy of the ``local`` environment against the usual tools.

    .venv/bin/python tools/bench.py [--runs 5] [--cli-deploy-runs 3] [--endpoint-url URL] [--json PATH]

Every step runs once to warm up, then ``--runs`` times; one table shows median, min and max, and
for each pair the ratio of the two medians, all from this one run. Every step is a fresh process
(or a few, summed), timed from the outside; peak memory is that process's max RSS, read from
``os.wait4`` for each child separately.

It never touches build/ or a stack of yours: it builds a private copy of ``config/local.toml``
under a unique ``project`` (LocalStack keeps S3 object folders in /tmp/localstack-s3-storage/,
shared by every instance on the machine, named after the buckets), starts its own LocalStack on
a free port unless ``--endpoint-url`` is given, deletes every stack it made and stops LocalStack
at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from tools import localstack as launcher  # noqa: E402  (needs the project root on sys.path)

T = TypeVar("T")
PYTHON = sys.executable  # `make bench` runs this with .venv/bin/python
CFN_LINT = Path(PYTHON).parent / "cfn-lint"
AWSLOCAL = PROJECT / ".venv-localstack" / "bin" / "awslocal"
ENVIRONMENT = "local"
# The AWS CLI's stack waiter sleeps 30 s between polls: one new-stack deploy costs ≈ 31 s whatever
# the stack, so that pair gets fewer runs by default.
CLI_DEPLOY_RUNS = 3
# LocalStack 4.13.1 keeps S3 object data here, one folder per bucket, for every instance on the
# machine (a constant in localstack/services/s3/provider.py); deleting an empty bucket leaves its folder.
S3_STORAGE = Path("/tmp/localstack-s3-storage")
CAPABILITIES = ["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]  # what deployer/changeset.py asks for
NOOP_TARGET_S = 1.0
GENERATE_TARGET_S = 1.0

# Runs in a fresh interpreter: the one-process lint, timed from inside as well (imports vs the lint).
LINT_API_CHILD = """\
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from templates_src.lint import lint_files
imported = time.perf_counter()
findings = lint_files([Path(p) for p in sys.argv[2:]], sys.argv[1])
print(json.dumps({"import_s": imported - started, "lint_s": time.perf_counter() - imported,
                  "findings": [str(f) for f in findings]}))
"""


class BenchError(RuntimeError):
    """A step failed; the message says which command and shows the end of its output."""


# --- measuring one child process -------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_mib: float


def run(command: list[str], env: dict[str, str], cwd: Path = PROJECT, expect: str | None = None) -> tuple[Sample, str]:
    """Run ``command`` to completion; its wall time, its own peak RSS and its output (stdout + stderr).

    ``os.wait4`` reports the usage of this one child (and of whatever it waited for), unlike
    ``getrusage(RUSAGE_CHILDREN)``, whose max RSS is the maximum over every child ever reaped.
    A forked child's peak starts at this process's own resident size (measured: a 150 MiB parent
    makes `print(1)` peak at 172 MiB), so the bench keeps itself small: about 20 MiB.
    """
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM: stop the child too, then let the caller clean up
            process.terminate()
            process.wait()
            raise
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0 or (expect is not None and expect not in text):
        problem = f"exit code {process.returncode}" if process.returncode else f"no {expect!r} in its output"
        tail = "\n".join(text.splitlines()[-25:])
        raise BenchError(f"{' '.join(map(str, command))} failed ({problem}):\n{tail}")
    return Sample(elapsed, usage.ru_maxrss / 1024), text  # ru_maxrss is in KiB on Linux


Command = tuple[list[str], dict[str, str], Path, str | None]  # command, env, cwd, expected output


def run_each(commands: list[Command]) -> list[Sample]:
    return [run(command, env, cwd, expect)[0] for command, env, cwd, expect in commands]


def total(samples: list[Sample]) -> Sample:
    """Commands run one after the other: the sum of their times, the largest of their peaks."""
    return Sample(sum(s.seconds for s in samples), max(s.max_rss_mib for s in samples))


# --- results and the one table -----------------------------------------------------------------

@dataclass
class Series:
    label: str
    unit: str  # "s" or "MiB"
    values: list[float] = field(default_factory=list)
    versus: tuple[tuple[str, str], ...] = ()  # (key of the row compared with, its short name)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def ratio_cell(series: Series, results: dict[str, Series]) -> str:
    cells = [f"{series.median / results[key].median:.1f}× {name}"
             for key, name in series.versus if key in results and results[key].values]
    return ", ".join(cells)


def print_table(results: dict[str, Series]) -> None:
    header = ("step", "runs", "median", "min", "max", "ratio")
    rows = [(s.label, str(len(s.values)), fmt(s.median, s.unit), fmt(min(s.values), s.unit),
             fmt(max(s.values), s.unit), ratio_cell(s, results))
            for s in results.values() if s.values]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        label, *numbers, ratio = row
        aligned = (cell.rjust(width) for cell, width in zip(numbers, widths[1:-1], strict=True))
        cells = [label.ljust(widths[0]), *aligned]
        return "  ".join([*cells, ratio]).rstrip()

    print(line(header))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    print("ratio: this row's median ÷ the median of the row named. Every row is a fresh process (or a few, summed).")


def print_targets(results: dict[str, Series]) -> None:
    def check(label: str, ok: bool, detail: str) -> None:
        print(f"  {'met   ' if ok else 'MISSED'}  {label}: {detail}")

    print("targets (issue 5):")
    if results["deploy_noop"].values:
        noop = results["deploy_noop"].median
        check(f"no-op redeploy under {NOOP_TARGET_S:.0f} s", noop < NOOP_TARGET_S, fmt(noop, "s"))
    share = results["generate_lint"].median / results["lint_cli"].median
    check("generate + lint under half of one cfn-lint process per template", share < 0.5,
          f"{share:.2f} of it")
    generate = results["generate"].median
    check(f"generate alone well under {GENERATE_TARGET_S:.0f} s", generate < GENERATE_TARGET_S / 2, fmt(generate, "s"))


def new_results(templates: int) -> dict[str, Series]:
    """Every row of the table, in order; a row with no values (a skipped step) is not printed."""
    return {
        "generate": Series("generate: python -m templates_src", "s"),
        "generate_lint": Series("generate + lint, one process (--lint)", "s"),
        "lint_api": Series(f"lint {templates} templates: cfn-lint Python API, one process", "s"),
        "lint_api_inside": Series("  of which lint_files() after the imports", "s"),
        "lint_cli": Series(f"lint {templates} templates: one cfn-lint process each", "s",
                           versus=(("lint_api", "API"), ("generate_lint", "generate+lint"))),
        "deploy_new": Series("deploy.py deploy, new stack", "s"),
        "cli_new": Series("awslocal cloudformation package + deploy, new stack", "s",
                          versus=(("deploy_new", "deploy.py"),)),
        "deploy_noop": Series("deploy.py deploy, no-op", "s"),
        "cli_noop": Series("awslocal package + deploy --no-fail-on-empty-changeset, no-op", "s",
                           versus=(("deploy_noop", "deploy.py"),)),
        "cli_noop_deploy": Series("  of which awslocal cloudformation deploy", "s",
                                  versus=(("deploy_noop", "deploy.py"),)),
        "rss_generate": Series("peak memory: generate", "MiB"),
        "rss_generate_lint": Series("peak memory: generate + lint", "MiB"),
        "rss_deploy_new": Series("peak memory: deploy.py deploy, new stack", "MiB"),
        "rss_cli_new": Series("peak memory: awslocal package + deploy, new stack", "MiB",
                              versus=(("rss_deploy_new", "deploy.py"),)),
    }


def record(results: dict[str, Series], key: str, samples: list[Sample], rss_key: str | None = None) -> None:
    results[key].values.extend(sample.seconds for sample in samples)
    if rss_key:
        results[rss_key].values.extend(sample.max_rss_mib for sample in samples)


def repeat(name: str, runs: int, step: Callable[[int], T], warm_up: Callable[[], object] | None = None) -> list[T]:
    """``warm_up`` (by default ``step(0)``), untimed, then what ``step(1..runs)`` measured; progress on stderr."""
    print(f"bench: {name} (warm-up + {runs} runs)", file=sys.stderr, flush=True)
    if warm_up:
        warm_up()
    else:
        step(0)
    return [step(number) for number in range(1, runs + 1)]


# --- the workspace: a private build, and the stacks it deploys -------------------------------

@dataclass
class Workspace:
    folder: Path
    project: str
    env: dict[str, str]  # for every child: no AWS profile, LocalStack's test credentials
    endpoint: str = ""
    stacks: set[str] = field(default_factory=set)  # created and not yet deleted

    @property
    def config_dir(self) -> Path:
        return self.folder / "config"

    @property
    def build_dir(self) -> Path:
        return self.folder / "build"

    @property
    def build(self) -> Path:
        return self.build_dir / ENVIRONMENT

    @property
    def manifest(self) -> dict:
        return json.loads((self.build / "manifest.json").read_text())

    def templates(self) -> list[Path]:
        manifest = self.manifest
        names = [manifest["root_template"], *sorted(set(manifest["child_templates"].values()))]
        return [self.build / name for name in names]

    @property
    def cli_bucket(self) -> str:
        return f"{self.project}-cli-templates"

    def awslocal_env(self) -> dict[str, str]:
        parsed = urlparse(self.endpoint)
        return {**self.env, "LOCALSTACK_HOST": f"{parsed.hostname}:{parsed.port}", "DISABLE_DEPRECATION_NOTICE": "1"}


def child_env(region: str) -> dict[str, str]:
    hidden = {"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"}
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return env


def make_workspace(folder: Path) -> Workspace:
    """A copy of config/local.toml under a project name no one else uses (bucket and role names derive from it)."""
    project = f"bench-{uuid.uuid4().hex[:8]}"
    source = (PROJECT / "config" / f"{ENVIRONMENT}.toml").read_text()
    copy, replaced = re.subn(r'(?m)^project\s*=\s*".*"$', f'project = "{project}"', source)
    if replaced != 1:
        raise BenchError(f"config/{ENVIRONMENT}.toml has no single top-level `project = \"...\"` line to replace")
    (folder / "config").mkdir()
    (folder / "config" / f"{ENVIRONMENT}.toml").write_text(copy)
    region = re.search(r'(?m)^region\s*=\s*"(.*)"$', source)
    return Workspace(folder, project, child_env(region.group(1) if region else "us-east-1"))


def generate_command(ws: Workspace, lint: bool = False) -> list[str]:
    return [PYTHON, "-m", "templates_src", "--env", ENVIRONMENT, "--config-dir", str(ws.config_dir),
            "--out", str(ws.build_dir), "--quiet", *(["--lint"] if lint else [])]


def deploy_py(ws: Workspace, command: str, stack: str, *extra: str) -> list[str]:
    return [PYTHON, "deploy.py", command, "--env", ENVIRONMENT, "--build-dir", str(ws.build_dir),
            "--stack-name", stack, "--endpoint-url", ws.endpoint, *extra]


def awslocal_deploy(ws: Workspace, stack: str, packaged: Path, *extra: str) -> list[str]:
    manifest = ws.manifest
    parameters = [f"{key}={value}" for key, value in sorted(manifest["parameters"].items())]
    return [str(AWSLOCAL), "cloudformation", "deploy", "--template-file", str(packaged), "--stack-name", stack,
            "--parameter-overrides", *parameters, "--capabilities", *CAPABILITIES,
            "--tags", f"Project={manifest['project']}", f"Environment={manifest['environment']}", *extra]


def awslocal_package(ws: Workspace, packaged: Path) -> list[str]:
    return [str(AWSLOCAL), "cloudformation", "package", "--template-file", str(ws.build / ws.manifest["root_template"]),
            "--s3-bucket", ws.cli_bucket, "--output-template-file", str(packaged), "--use-json"]


def destroy(ws: Workspace, stack: str) -> None:
    """Untimed. deploy.py destroy also empties the artifact bucket, whichever tool made the stack."""
    run(deploy_py(ws, "destroy", stack, "--yes", "--timeout", "120"), ws.env)
    ws.stacks.discard(stack)


def destroy_all(ws: Workspace) -> None:
    for stack in sorted(ws.stacks):
        try:
            destroy(ws, stack)
        except BenchError as error:
            print(f"bench: could not delete stack {stack}: {error}", file=sys.stderr)


def remove_bucket_folders(ws: Workspace) -> None:
    """The folders LocalStack left for our buckets; their names start with our unique project name."""
    for folder in S3_STORAGE.glob(f"{ws.project}-*"):
        shutil.rmtree(folder, ignore_errors=True)


# --- the steps -----------------------------------------------------------------------------------

def bench_generate(ws: Workspace, results: dict[str, Series], runs: int) -> None:
    samples = repeat("generate", runs, lambda n: run(generate_command(ws), ws.env)[0])
    record(results, "generate", samples, "rss_generate")
    samples = repeat("generate + lint", runs, lambda n: run(generate_command(ws, lint=True), ws.env)[0])
    record(results, "generate_lint", samples, "rss_generate_lint")


def bench_lint(ws: Workspace, results: dict[str, Series], runs: int) -> None:
    templates = [str(path) for path in ws.templates()]
    region = ws.env["AWS_REGION"]

    def api(number: int) -> tuple[Sample, float]:
        sample, output = run([PYTHON, "-c", LINT_API_CHILD, region, *templates], ws.env)
        inside = json.loads(output.strip().splitlines()[-1])
        if inside["findings"]:
            raise BenchError("the private build is not lint-clean:\n" + "\n".join(inside["findings"]))
        return sample, inside["lint_s"]

    measured = repeat("lint, one process", runs, api)
    record(results, "lint_api", [sample for sample, _ in measured])
    results["lint_api_inside"].values.extend(lint_s for _, lint_s in measured)

    # From the build folder, like lint_files(): cfn-lint then follows the root's relative TemplateURLs.
    per_template = [([str(CFN_LINT), "--regions", region, "--include-checks", "I", "--", path], ws.env, ws.build, None)
                    for path in templates]
    record(results, "lint_cli", repeat("lint, one cfn-lint process per template", runs,
                                       lambda n: total(run_each(per_template))))


def bench_deploy_py(ws: Workspace, results: dict[str, Series], runs: int) -> None:
    stack = ""

    def new_stack(number: int) -> Sample:
        nonlocal stack
        if stack:
            destroy(ws, stack)  # untimed, between runs: one stack at a time, as bucket and role names are fixed
        stack = f"{ws.project}-deploypy-{number}"
        ws.stacks.add(stack)
        return run(deploy_py(ws, "deploy", stack), ws.env, expect="CREATE_COMPLETE")[0]

    record(results, "deploy_new", repeat("deploy.py deploy, new stack", runs, new_stack), "rss_deploy_new")
    record(results, "deploy_noop", repeat("deploy.py deploy, no-op", runs, lambda n: run(
        deploy_py(ws, "deploy", stack), ws.env, expect="no changes")[0]))
    destroy(ws, stack)


def bench_aws_cli(ws: Workspace, results: dict[str, Series], runs: int, new_runs: int) -> None:
    env = ws.awslocal_env()
    packaged = ws.folder / "cli-packaged.json"
    run([str(AWSLOCAL), "s3api", "create-bucket", "--bucket", ws.cli_bucket], env)
    stack = ""

    def new_stack(number: int) -> Sample:
        nonlocal stack
        if stack:
            destroy(ws, stack)
        stack = f"{ws.project}-awscli-{number}"
        ws.stacks.add(stack)
        return total(run_each([(awslocal_package(ws, packaged), env, PROJECT, None),
                               (awslocal_deploy(ws, stack, packaged), env, PROJECT, "Successfully created/updated")]))

    def noop(number: int) -> tuple[Sample, Sample]:
        package, deploy = run_each([(awslocal_package(ws, packaged), env, PROJECT, None),
                                    (awslocal_deploy(ws, stack, packaged, "--no-fail-on-empty-changeset"), env,
                                     PROJECT, "No changes to deploy")])
        return total([package, deploy]), deploy

    try:
        # A full warm-up would cost another 31 s of the CLI's fixed poll; `package` warms the same
        # imports and uploads the children, as deploy.py's warm-up does for its own.
        samples = repeat("awslocal package + deploy, new stack", new_runs, new_stack,
                         warm_up=lambda: run(awslocal_package(ws, packaged), env))
        record(results, "cli_new", samples, "rss_cli_new")
        measured = repeat("awslocal package + deploy, no-op", runs, noop)
        record(results, "cli_noop", [both for both, _ in measured])
        record(results, "cli_noop_deploy", [deploy for _, deploy in measured])
        destroy(ws, stack)
    finally:
        try:
            run([str(AWSLOCAL), "s3", "rb", f"s3://{ws.cli_bucket}", "--force"], env)
        except BenchError as error:
            print(f"bench: could not delete bucket {ws.cli_bucket}: {error}", file=sys.stderr)


# --- machine, LocalStack, main ------------------------------------------------------------------

def machine(endpoint: str | None) -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    health = launcher.health(endpoint) if endpoint else None
    return {
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": f"{int(memory.group(1)) / 1024 ** 2:.1f} GiB" if memory else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "localstack": (health or {}).get("version", "not used"),
        "cfn-lint": _version(CFN_LINT).removeprefix("cfn-lint ").strip(),
        "aws-cli": _version(AWSLOCAL.parent / "aws").split(" ")[0],
    }


def _version(program: Path) -> str:
    try:
        output = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return "missing"
    return (output.stdout or output.stderr).strip()


def print_machine(info: dict[str, str]) -> None:
    print(f"machine: {info['cpus']} CPUs ({info['cpu']}), {info['memory']} RAM, {info['os']}")
    print(f"tools:   Python {info['python']}, LocalStack {info['localstack']}, cfn-lint {info['cfn-lint']}, "
          f"{info['aws-cli']}")


@contextmanager
def localstack(folder: Path, endpoint: str | None) -> Iterator[str]:
    """The given endpoint, or our own LocalStack on a free port, stopped however we leave."""
    if endpoint:
        if launcher.health(endpoint) is None:
            raise BenchError(f"no LocalStack answers at {endpoint}")
        yield endpoint
        return
    pid_path = folder / "localstack.pid"
    print("bench: starting LocalStack", file=sys.stderr, flush=True)
    try:
        yield launcher.start(launcher.free_port(), folder / "state", folder / "localstack.log", pid_path)
    finally:
        launcher.stop(pid_path)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each step after its warm-up (default 5)")
    parser.add_argument("--cli-deploy-runs", type=int, default=CLI_DEPLOY_RUNS,
                        help=f"runs of the AWS CLI's new-stack deploy, ≈ 31 s each (default {CLI_DEPLOY_RUNS})")
    parser.add_argument("--endpoint-url", help="use this LocalStack instead of starting one")
    parser.add_argument("--no-deploy", action="store_true", help="only generate and lint: no LocalStack")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.cli_deploy_runs < 1:
        parser.error("--runs and --cli-deploy-runs need at least 1")
    return args


def write_json(path: Path, info: dict[str, str], args: argparse.Namespace, results: dict[str, Series]) -> None:
    steps = {key: {"label": s.label, "unit": s.unit, "values": s.values,
                   **({"median": s.median, "min": min(s.values), "max": max(s.values)} if s.values else {})}
             for key, s in results.items()}
    path.write_text(json.dumps({"machine": info, "runs": args.runs, "cli_deploy_runs": args.cli_deploy_runs,
                                "steps": steps}, indent=2) + "\n")


def bench(args: argparse.Namespace, folder: Path) -> tuple[dict[str, str], dict[str, Series]]:
    ws = make_workspace(folder)
    run(generate_command(ws), ws.env)
    results = new_results(len(ws.templates()))
    bench_generate(ws, results, args.runs)
    bench_lint(ws, results, args.runs)
    if args.no_deploy:
        return machine(None), results
    try:
        with localstack(folder / "localstack", args.endpoint_url) as endpoint:
            ws.endpoint = endpoint
            info = machine(endpoint)
            try:
                bench_deploy_py(ws, results, args.runs)
                bench_aws_cli(ws, results, args.runs, args.cli_deploy_runs)
            finally:
                destroy_all(ws)
    finally:
        remove_bucket_folders(ws)
    return info, results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    # SIGTERM unwinds like Ctrl-C, so the stacks and LocalStack are cleaned up either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        info, results = bench(args, folder)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except launcher.LocalStackError as error:
        print(f"bench: LocalStack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; cleaned up its stacks and LocalStack (any failure is printed above)",
              file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print_machine(info)
    print()
    print_table(results)
    print()
    print_targets(results)
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, info, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
