"""Lint built templates with cfn-lint's Python API, every template of an environment in one process.

One cfn-lint process costs about 2 s of start-up; linting the six templates of an environment in
one process pays it once. Informational findings count: a clean build has none at all. The root
is linted from its own folder so cfn-lint follows the relative ``TemplateURL``s into the children
and checks the wiring (E3043 for parameters, the GetAtt check for ``Outputs.X``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from cfnlint.api import ManualArgs, lint_by_config


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} [{self.severity}] {self.message}"


def lint_files(paths: list[Path], region: str) -> list[Finding]:
    """Every cfn-lint finding (errors, warnings and informational) in ``paths``, in file order.

    The templates of one environment share a folder. cfn-lint reads a nested stack's outputs
    only from a file under the working directory, so linting runs from that folder.
    """
    absolute = [path.resolve() for path in paths]
    folders = {path.parent for path in absolute}
    if len(folders) != 1:
        raise ValueError(f"lint one environment's folder at a time, got {sorted(map(str, folders))}")
    with contextlib.chdir(folders.pop()):
        matches = lint_by_config(ManualArgs(
            templates=[str(path) for path in absolute],
            regions=[region],
            include_checks=["I"],
        ))
    findings = [
        Finding(
            file=str(match.filename),
            line=match.linenumber,
            rule=match.rule.id,
            severity=match.rule.severity,
            message=match.message,
        )
        for match in matches
    ]
    return sorted(findings, key=lambda f: (f.file, f.line, f.rule, f.message))
