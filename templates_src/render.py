"""Turn validated settings into the files of ``build/ENV/``: one JSON template per stack and a manifest.

Output is deterministic: keys sorted, fixed indentation, a trailing newline, no timestamps, so
the same settings always give byte-identical files (and packaging can key uploads on content).
The manifest is what ``deploy.py`` reads instead of importing this package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from templates_src.settings import Settings
from templates_src.stacks import build, iam, network, pipeline, root, storage

BUILD_DIR = Path(__file__).resolve().parent.parent / "build"
CHILD_MODULES = {
    "NetworkStack": network,
    "StorageStack": storage,
    "IamStack": iam,
    "BuildStack": build,
    "PipelineStack": pipeline,
}
MANIFEST = "manifest.json"


def render(settings: Settings) -> dict[str, dict[str, Any]]:
    """File name → JSON document, for every file of the environment's build folder."""
    documents = {"root.json": root.template(settings).to_dict()}
    for logical_id, module in CHILD_MODULES.items():
        documents[root.CHILD_FILES[logical_id]] = module.template(settings).to_dict()
    documents[MANIFEST] = manifest(settings)
    return documents


def manifest(settings: Settings) -> dict[str, Any]:
    """What the deployer needs to know about this build, and nothing it could get wrong."""
    return {
        "project": settings.project,
        "environment": settings.environment,
        "region": settings.region,
        "stack_name": settings.deploy.stack_name,
        "termination_protection": settings.deploy.termination_protection,
        "bucket_deletion_policy": settings.storage.deletion_policy,
        "root_template": "root.json",
        "child_templates": dict(root.CHILD_FILES),
        "parameters": {
            "Environment": settings.environment,
            "EnableCodeBuild": "true" if settings.build.enable_codebuild else "false",
            "EnableNat": "true" if settings.network.enable_nat else "false",
        },
        "github": {
            "source": settings.github.source,
            "repository": f"{settings.github.owner}/{settings.github.repo}",
            "branch": settings.github.branch,
            "connection_arn": settings.github.connection_arn,
            "token_secret_name": settings.github.token_secret_name,
        },
    }


def serialize(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(documents: dict[str, dict[str, Any]], folder: Path) -> list[tuple[Path, int | None]]:
    """Write every document into ``folder``; return (path, resource count or None) per file.

    Files not part of this build (say, a child removed since) are deleted so the folder holds
    exactly one build.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.name not in documents and stale.name != "packaged.json":
            stale.unlink()
    written = []
    for name, document in documents.items():
        path = folder / name
        text = serialize(document)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        resources = len(document["Resources"]) if "Resources" in document else None
        written.append((path, resources))
    return written
