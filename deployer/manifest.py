"""What ``python -m templates_src`` wrote to ``build/ENV/``: the manifest and the templates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import UsageError

BUILD_DIR = Path(__file__).resolve().parent.parent / "build"


@dataclass(frozen=True)
class Build:
    folder: Path
    project: str
    environment: str
    region: str
    stack_name: str
    termination_protection: bool
    bucket_deletion_policy: str
    default_parameters: dict[str, str]
    github: dict[str, Any]
    root: dict[str, Any]
    children: dict[str, str]  # root logical id → file name

    @property
    def production(self) -> bool:
        """Production environments are the ones the settings protect from deletion."""
        return self.termination_protection

    def child_template(self, logical_id: str) -> dict[str, Any]:
        return json.loads((self.folder / self.children[logical_id]).read_text(encoding="utf-8"))


def load(environment: str, build_dir: Path = BUILD_DIR) -> Build:
    folder = build_dir / environment
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        built = sorted(p.parent.name for p in build_dir.glob("*/manifest.json"))
        raise UsageError(
            f"no build for environment {environment!r} ({manifest_path} is missing); "
            f"run `make build ENV={environment}` (or `python -m templates_src --env {environment}`) first"
            + (f"; built environments: {', '.join(built)}" if built else "")
        )
    rebuild = f"rebuild it with `make build ENV={environment}`"
    manifest = _read_json(manifest_path, rebuild)
    try:
        return Build(
            folder=folder,
            project=manifest["project"],
            environment=manifest["environment"],
            region=manifest["region"],
            stack_name=manifest["stack_name"],
            termination_protection=manifest["termination_protection"],
            bucket_deletion_policy=manifest["bucket_deletion_policy"],
            default_parameters=manifest["parameters"],
            github=manifest["github"],
            root=_read_json(folder / manifest["root_template"], rebuild),
            children=manifest["child_templates"],
        )
    except KeyError as missing:
        raise UsageError(f"{manifest_path} has no {missing} entry (written by another version of the "
                         f"generator?); {rebuild}") from None


def _read_json(path: Path, rebuild: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: the build is incomplete; {rebuild}") from None
    except ValueError as error:  # json.JSONDecodeError
        raise UsageError(f"{path} is not valid JSON ({error}); {rebuild}") from None


def parse_parameters(build: Build, pairs: list[str]) -> dict[str, str]:
    """The root's parameters: the build's defaults overridden by ``KEY=VALUE`` pairs, all checked."""
    declared = build.root.get("Parameters", {})
    values = dict(build.default_parameters)
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            problems.append(f"--param {pair!r} is not KEY=VALUE (e.g. --param EnableCodeBuild=false)")
            continue
        if key not in declared:
            problems.append(f"--param {key}: the root stack has no such parameter; "
                            f"allowed: {', '.join(sorted(declared))}")
            continue
        allowed = declared[key].get("AllowedValues")
        if allowed and value not in allowed:
            problems.append(f"--param {key}={value}: not allowed; allowed: {', '.join(allowed)}")
            continue
        values[key] = value
    if problems:
        raise UsageError("\n".join(problems))
    return values
