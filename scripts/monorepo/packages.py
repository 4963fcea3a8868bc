"""The packages of the repo and their local-dependency graph, read from the pyproject files."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_GLOBS = ("apps/*/pyproject.toml", "libs/*/pyproject.toml")


class WorkspaceError(Exception):
    """A problem with the workspace that the user must fix; the message says what."""


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file with tomllib (3.11+) or tomli (3.10)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{path}: invalid TOML: {exc}") from None


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name: `Shared_Audio` -> `shared-audio`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Canonical project name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise WorkspaceError(f"cannot read a project name from requirement {requirement!r}")
    return canonical_name(match.group(1))


@dataclass(frozen=True)
class Package:
    """One package of the monorepo."""

    path: Path  # absolute folder
    root: Path  # the repo it belongs to
    name: str  # canonical project name
    kind: str  # "apps" or "libs"
    requirements: tuple[str, ...]  # runtime dependencies + every extra
    extras: tuple[str, ...]  # optional-dependency groups other than dev (e.g. "engines")

    @property
    def rel(self) -> str:
        """Folder relative to the repo root, e.g. ``libs/shared-audio``."""
        return self.path.relative_to(self.root).as_posix()

    @property
    def import_name(self) -> str:
        """The import package: the folder name with `-` -> `_`."""
        return self.path.name.replace("-", "_")


def read_package(pyproject: Path, root: Path = ROOT) -> Package:
    """Read one package's pyproject.toml."""
    data = load_toml(pyproject)
    project = data.get("project")
    if not isinstance(project, dict) or "name" not in project:
        raise WorkspaceError(f"{pyproject}: no [project] name")
    optional = project.get("optional-dependencies", {})
    return Package(
        path=pyproject.parent.resolve(),
        root=root.resolve(),
        name=canonical_name(str(project["name"])),
        kind=pyproject.parent.parent.name,
        requirements=(
            *project.get("dependencies", []),
            *(r for group in optional.values() for r in group),
        ),
        extras=tuple(sorted(name for name in optional if name != "dev")),
    )


def discover(root: Path = ROOT) -> dict[str, Package]:
    """Every package under apps/ and libs/ that holds a pyproject.toml, by canonical name."""
    packages: dict[str, Package] = {}
    for pattern in PACKAGE_GLOBS:
        for pyproject in sorted(root.glob(pattern)):
            package = read_package(pyproject, root)
            if package.name in packages:
                raise WorkspaceError(
                    f"{package.rel} and {packages[package.name].rel} both declare "
                    f"the project name {package.name!r}"
                )
            packages[package.name] = package
    return packages


def direct_local_deps(package: Package, packages: dict[str, Package]) -> list[Package]:
    """Local packages that `package` names in its dependencies or extras."""
    found: list[Package] = []
    for requirement in package.requirements:
        name = requirement_name(requirement)
        if name not in packages or name == package.name:
            continue
        if "@" in requirement.split(";")[0]:
            raise WorkspaceError(
                f"{package.rel}/pyproject.toml: local dependency {requirement!r} must be "
                "declared by name only; its path is wired by the Makefile"
            )
        dependency = packages[name]
        if dependency.kind != "libs":
            raise WorkspaceError(
                f"{package.rel}/pyproject.toml depends on {dependency.rel}: packages may only "
                "depend on libraries (libs/*), never on services"
            )
        if dependency not in found:
            found.append(dependency)
    return found


def local_deps(package: Package, packages: dict[str, Package]) -> list[Package]:
    """Transitive local libraries of `package`, dependencies before dependents."""
    ordered: list[Package] = []
    visiting: list[str] = []

    def visit(current: Package) -> None:
        if current.name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(current.name) :], current.name])
            raise WorkspaceError(f"local dependency cycle: {cycle}")
        visiting.append(current.name)
        for dependency in direct_local_deps(current, packages):
            if dependency not in ordered:
                visit(dependency)
        visiting.pop()
        if current is not package and current not in ordered:
            ordered.append(current)

    visit(package)
    return ordered


def dependents(package: Package, packages: dict[str, Package]) -> list[Package]:
    """Packages that need `package`, directly or through other libraries."""
    return [other for other in packages.values() if package in local_deps(other, packages)]


def find_package(folder: str, packages: dict[str, Package], root: Path = ROOT) -> Package:
    """The package whose folder is `folder` (absolute, or relative to the repo root or cwd)."""
    for candidate in (Path.cwd() / folder, root / folder):  # an absolute folder: both the same
        for package in packages.values():
            if package.path == candidate.resolve():
                return package
    raise WorkspaceError(f"{folder}: not a package folder (apps/* or libs/* with a pyproject.toml)")
