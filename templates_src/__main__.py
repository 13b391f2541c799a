"""``python -m templates_src --env ENV``: validate settings, write the templates to build/ENV/.

Each environment also gets ``architecture.md``, a Mermaid diagram drawn from the written JSON.
With ``--lint``, ``--sarif PATH`` and ``--junit PATH`` also write the findings for CI.

Exit codes: 0 written (and lint-clean with ``--lint``), 1 lint findings, 2 invalid settings or
arguments (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from templates_src import diagram
from templates_src import settings as settings_module
from templates_src.render import BUILD_DIR, render, write

EXIT_OK, EXIT_LINT, EXIT_USAGE = 0, 1, 2


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m templates_src",
        description="Generate the nested CloudFormation templates of one or more environments into build/ENV/.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", action="append", metavar="ENV",
                       help="environment to build (config/ENV.toml); repeatable")
    which.add_argument("--all", action="store_true", help="every environment in config/")
    parser.add_argument("--lint", action="store_true", help="then lint every written template with cfn-lint")
    parser.add_argument("--sarif", type=Path, metavar="PATH",
                        help="with --lint: also write the findings as SARIF 2.1.0 (GitHub code scanning)")
    parser.add_argument("--junit", type=Path, metavar="PATH",
                        help="with --lint: also write the findings as JUnit XML, a testcase per template")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help="output folder (default: build/)")
    parser.add_argument("--config-dir", type=Path, default=settings_module.CONFIG_DIR,
                        help="folder of ENV.toml settings files (default: config/)")
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)
    if (args.sarif or args.junit) and not args.lint:
        parser.error("--sarif and --junit report the lint's findings: add --lint")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    environments = settings_module.available_environments(args.config_dir) if args.all else args.env

    # Validate every environment before writing anything.
    loaded, problems = [], []
    for environment in environments:
        try:
            loaded.append(settings_module.load(environment, args.config_dir))
        except settings_module.SettingsError as error:
            problems.extend(error.problems)
    if problems:
        print(f"error: invalid settings ({len(problems)} problem{'s' if len(problems) > 1 else ''}); "
              "nothing was written:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE

    written = []
    for settings in loaded:
        folder = args.out / settings.environment
        files = write(render(settings), folder)
        files.append((diagram.write(folder), None))  # from the JSON just written, so it cannot drift
        written.append((settings, files))
        if not args.quiet:
            print(f"{settings.environment}: wrote {len(files)} files to {args.out / settings.environment}/")
            for path, resources in files:
                counted = f"{resources:3d} resources" if resources is not None else ""
                print(f"  {path.name:<15} {counted}")

    if not args.lint:
        return EXIT_OK
    from templates_src.lint import lint_files  # cfn-lint is slow to import; only when asked

    findings, runs = [], []
    for settings, files in written:
        templates = [path for path, resources in files if resources is not None]
        found = lint_files(templates, settings.region)
        findings.extend(found)
        runs.append((settings.environment, templates, found))
    if args.sarif or args.junit:
        from templates_src import reports

        if args.sarif:
            reports.write_sarif(args.sarif, findings)
        if args.junit:
            reports.write_junit(args.junit, [reports.EnvironmentLint(*run) for run in runs])
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(f"error: cfn-lint found {len(findings)} problem(s)", file=sys.stderr)
        return EXIT_LINT
    if not args.quiet:
        count = sum(1 for _, files in written for _, resources in files if resources is not None)
        print(f"cfn-lint: {count} templates, no findings")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
