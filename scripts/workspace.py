#!/usr/bin/env python3
"""Workspace machinery: package discovery, local-dependency wiring and venv installs.

The Makefiles decide *whether* something must be (re)installed (stamp files, see
scripts/mk/common.mk); this script does the installing, so that the logic is in one place,
typed and tested.

Local dependencies are declared once, by name, in each package's pyproject.toml
(``dependencies = ["shared-audio>=0.1.0"]``). pip cannot resolve those names by itself
(errata 1-3: it would ask the package index, and a stranger's package of that name could win),
so every install names every local library it needs, transitive ones included, as an editable
path in the same pip call (errata 4).

Commands:
    workspace.py packages                 list package folders
    workspace.py local-deps PKG           transitive local libraries of PKG, in install order
    workspace.py install-tools            build the root tools environment (.venv)
    workspace.py install PKG              build PKG/.venv
    workspace.py check                    check the dependency graph (names, boundaries, cycles)

Only the standard library is imported at start-up: ``install-tools`` runs on the bare
interpreter the user picked. TOML is read with tomllib (3.11+) or tomli (3.10, in the tools env).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_GLOBS = ("apps/*/pyproject.toml", "libs/*/pyproject.toml")
VENV = ".venv"
STAMP = ".installed"  # inside the venv: written last, only after a successful install
STAMP_DEPS = ".installed.d"  # make fragment: which pyproject files the stamp depends on

# dirschema 0.1.0 declares Requires-Python <3.11 although it runs on 3.10-3.13 (errata 14).
# `--ignore-requires-python` must not leak onto other packages, so it gets a pip call of its
# own with --no-deps; its real dependencies are pinned in the root `tools` extra.
DIRSCHEMA_REQUIREMENT = "dirschema==0.1.0"


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


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """Canonical project name of a PEP 508 requirement string."""
    match = _REQUIREMENT_NAME.match(requirement)
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
    requirements: tuple[str, ...]  # runtime dependencies + the dev extra
    build_requires: tuple[str, ...]

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
    requirements = list(project.get("dependencies", []))
    requirements += project.get("optional-dependencies", {}).get("dev", [])
    build = data.get("build-system", {}).get("requires", [])
    return Package(
        path=pyproject.parent.resolve(),
        root=root.resolve(),
        name=canonical_name(str(project["name"])),
        kind=pyproject.parent.parent.name,
        requirements=tuple(requirements),
        build_requires=tuple(build),
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
    """Local packages that `package` names in its dependencies or dev extra."""
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


def find_package(folder: str, packages: dict[str, Package]) -> Package:
    """The package whose folder is `folder` (absolute, or relative to the repo root or cwd)."""
    target = Path(folder)
    candidates = [target] if target.is_absolute() else [Path.cwd() / target, ROOT / target]
    for candidate in candidates:
        resolved = candidate.resolve()
        for package in packages.values():
            if package.path == resolved:
                return package
    raise WorkspaceError(f"{folder}: not a package folder (apps/* or libs/* with a pyproject.toml)")


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv."""
    return venv / "bin" / "python"


def interpreter_identity(python: str) -> str:
    """`<real path> <version>` of an interpreter: what a venv was built with."""
    out = subprocess.run(
        [
            python,
            "-c",
            "import os,sys;print(os.path.realpath(sys.executable),sys.version.split()[0])",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def run(command: list[str], *, quiet: bool) -> None:
    """Run a command, echoing it; raise WorkspaceError naming it when it fails."""
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None, check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"command failed with exit code {result.returncode}: {command[0]} ...")


def make_venv(venv: Path, python: str, prompt: str) -> str:
    """Create `venv` with `python`, unless it already exists with that same interpreter.

    The venv is made without pip: creating it *with* pip costs ~3.5 s (ensurepip), while pip
    arrives in ~0.5 s as an ordinary requirement of the first pip call.

    Returns:
        The interpreter's identity (see `interpreter_identity`), for the stamp.
    """
    wanted = interpreter_identity(python)
    if venv_python(venv).exists():
        try:
            if interpreter_identity(str(venv_python(venv))) == wanted:
                return wanted
        except (OSError, subprocess.CalledProcessError):
            pass  # broken venv (e.g. its interpreter was removed): rebuild it
        print(f"{venv}: built with another interpreter; rebuilding with {wanted}", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    run([python, "-m", "venv", "--without-pip", "--prompt", prompt, str(venv)], quiet=False)
    return wanted


def host_pip(python: str) -> list[str] | None:
    """A pip that can install into another interpreter (`pip --python`, pip >= 22.3)."""
    probe = subprocess.run(
        [python, "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    match = re.match(r"pip (\d+)\.(\d+)", probe.stdout)
    if probe.returncode == 0 and match and (int(match[1]), int(match[2])) >= (22, 3):
        return [python, "-m", "pip"]
    return None


def pip_install(pip: list[str], venv: Path, args: list[str], *, quiet: bool) -> None:
    """`pip install` into `venv`'s interpreter."""
    flags = ["--quiet"] if quiet else []
    # --no-compile: pip would byte-compile every file of every wheel (mypy, numpy, hypothesis:
    # ~40% of a cold install, measured); Python compiles what is actually imported, on first use.
    command = [*pip, "--python", str(venv_python(venv)), "install", "--no-compile", *flags, *args]
    run(command, quiet=False)


def write_stamp(package_dir: Path, identity: str, deps: list[Package]) -> None:
    """Record a successful install: the stamp, and the make fragment listing its inputs."""
    venv = package_dir / VENV
    inputs = [
        os.path.relpath(dep.path / "pyproject.toml", package_dir).replace(os.sep, "/")
        for dep in deps
    ]
    lines = [f"{VENV}/{STAMP}: {' '.join(inputs)}".rstrip(), ""]
    # Like gcc -MP: an empty rule per input, so a deleted library does not break make.
    lines += [f"{path}:" for path in inputs]
    (venv / STAMP_DEPS).write_text("\n".join(lines) + "\n")
    (venv / STAMP).write_text(identity + "\n" + "".join(f"{d.rel}\n" for d in deps))


def build_venv(
    venv: Path,
    python: str,
    editables: list[tuple[Package, str]],
    *,
    requirements: tuple[str, ...] = (),
    quiet: bool,
) -> str:
    """Create or refresh `venv`: local packages editable, plus `requirements`.

    `editables` pairs each package with its extras (``""`` or ``"[dev]"``), dependencies
    first. Used for every package's venv and for docs/.venv.

    Returns:
        The interpreter's identity, for the caller's stamp.
    """
    (venv / STAMP).unlink(missing_ok=True)  # a failed install must not look fresh
    identity = make_venv(venv, python, venv.parent.name)
    pip = tools_pip(python)
    # Step 1: pip itself and the build backend, so that step 2 can skip build isolation
    # (isolation would build a throwaway setuptools env for every editable: ~1.5 s each).
    build_requires = sorted({r for package, _ in editables for r in package.build_requires})
    pip_install(pip, venv, ["pip", *build_requires], quiet=quiet)
    # Step 2: one resolver run. Every local library is named as an editable path, so pip
    # satisfies `shared-audio>=0.1.0` from the path and never asks an index for that name.
    args: list[str] = []
    for package, extras in editables:
        args += ["--editable", f"{package.path}{extras}"]
    pip_install(pip, venv, ["--no-build-isolation", *args, *requirements], quiet=quiet)
    return identity


def install_package(folder: str, python: str, packages: dict[str, Package], *, quiet: bool) -> None:
    """Build `folder`/.venv: the package editable with [dev], and its local libraries."""
    package = find_package(folder, packages)
    deps = local_deps(package, packages)
    started = time.perf_counter()
    editables = [(dep, "") for dep in deps] + [(package, "[dev]")]
    identity = build_venv(package.path / VENV, python, editables, quiet=quiet)
    write_stamp(package.path, identity, deps)
    elapsed = time.perf_counter() - started
    names = ", ".join(d.rel for d in deps) or "none"
    print(f"installed {package.rel} in {elapsed:.1f} s (local libraries: {names})", flush=True)


def tools_pip(python: str) -> list[str]:
    """The pip used for every install: the root tools env's, else the chosen interpreter's."""
    tools = venv_python(ROOT / VENV)
    if tools.exists():
        return [str(tools), "-m", "pip"]
    found = host_pip(python)
    if found is None:
        raise WorkspaceError("no pip found: run `make install` at the repo root first")
    return found


def install_tools(python: str, *, quiet: bool) -> None:
    """Build the root tools environment: the `tools` extra of the root pyproject + dirschema."""
    started = time.perf_counter()
    venv = ROOT / VENV
    (venv / STAMP).unlink(missing_ok=True)
    identity = make_venv(venv, python, "tools")
    pip = host_pip(python)
    if pip is None:
        # No usable pip next to the interpreter (e.g. Debian without python3-pip): bootstrap
        # the tools env's own pip from the interpreter's bundled wheel.
        run([str(venv_python(venv)), "-m", "ensurepip", "--upgrade"], quiet=True)
        pip = [str(venv_python(venv)), "-m", "pip"]
    # With build isolation here: pip reads the root's build-system itself (on 3.10 this
    # script cannot parse TOML before tomli is in the tools env), and it is one build only.
    pip_install(pip, venv, ["pip", "--editable", f"{ROOT}[tools]"], quiet=quiet)
    pip = [str(venv_python(venv)), "-m", "pip"]  # from now on: the fresh pip of the tools env
    pip_install(
        pip,
        venv,
        ["--no-deps", "--ignore-requires-python", DIRSCHEMA_REQUIREMENT],
        quiet=quiet,
    )
    (venv / STAMP).write_text(identity + "\n")
    print(f"installed the tools environment (.venv) in {time.perf_counter() - started:.1f} s")


# Tool configuration lives only in the root pyproject.toml (errata 6, 7, 10). Any of these in a
# package would silently replace it for that package.
FORBIDDEN_TOOL_TABLES = ("ruff", "mypy", "pytest", "coverage", "pydantic-mypy")
FORBIDDEN_CONFIG_FILES = (
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "pytest.ini",
    "mypy.ini",
    ".mypy.ini",
    ".coveragerc",
    "ruff.toml",
    ".ruff.toml",
    "requirements.txt",
)


def check_package(package: Package, packages: dict[str, Package], root_dev: list[str]) -> list[str]:
    """Problems with one package: graph, single configuration, declared-once dependencies."""
    problems: list[str] = []
    where = f"{package.rel}/pyproject.toml"
    try:
        local_deps(package, packages)
    except WorkspaceError as exc:
        problems.append(str(exc))
    data = load_toml(package.path / "pyproject.toml")
    for table in FORBIDDEN_TOOL_TABLES:
        if table in data.get("tool", {}):
            problems.append(
                f"{where}: [tool.{table}] would replace the root configuration; "
                "move the setting to the root pyproject.toml"
            )
    for name in FORBIDDEN_CONFIG_FILES:
        if (package.path / name).exists():
            problems.append(
                f"{package.rel}/{name}: tool configuration belongs in the root pyproject.toml"
            )
    project = data.get("project", {})
    if project.get("requires-python") != ">=3.10":
        problems.append(f'{where}: requires-python must be ">=3.10"')
    dev = project.get("optional-dependencies", {}).get("dev", [])
    if dev[: len(root_dev)] != root_dev:
        problems.append(
            f"{where}: the dev extra must start with the root pyproject's dev list, verbatim: "
            f"{root_dev}"
        )
    root_build = load_toml(ROOT / "pyproject.toml").get("build-system", {})
    if data.get("build-system") != root_build:
        problems.append(f"{where}: [build-system] must equal the root's: {root_build}")
    setuptools_table = data.get("tool", {}).get("setuptools", {})
    declared = set(setuptools_table.get("packages", []))
    on_disk = {
        init.parent.relative_to(package.path).as_posix().replace("/", ".")
        for init in (package.path / package.import_name).rglob("__init__.py")
    }
    if setuptools_table.get("package-dir") != {"": "."}:
        problems.append(f'{where}: [tool.setuptools] package-dir must be {{"" = "."}} (errata 5)')
    if missing := sorted(on_disk - declared):
        problems.append(f"{where}: [tool.setuptools] packages is missing {missing} (errata 5)")
    package_data = setuptools_table.get("package-data", {}).get(package.import_name, [])
    if "py.typed" not in package_data:
        problems.append(
            f"{where}: ship py.typed: [tool.setuptools.package-data] {package.import_name}"
        )
    makefile = package.path / "Makefile"
    fragment = "app.mk" if package.kind == "apps" else "package.mk"
    if not makefile.exists() or f"scripts/mk/{fragment}" not in makefile.read_text():
        problems.append(f"{package.rel}/Makefile: must include ../../scripts/mk/{fragment}")
    return problems


def check(packages: dict[str, Package]) -> list[str]:
    """Every workspace problem: graph, boundaries, single configuration, drift."""
    root_dev = load_toml(ROOT / "pyproject.toml")["project"]["optional-dependencies"]["dev"]
    problems: list[str] = []
    for package in packages.values():
        problems += check_package(package, packages, root_dev)
    for name in FORBIDDEN_CONFIG_FILES:
        if (ROOT / name).exists():
            problems.append(f"{name}: tool configuration belongs in pyproject.toml (errata 10)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for new venvs")
    parser.add_argument("--verbose", action="store_true", help="show pip's full output")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("packages")
    sub.add_parser("check")
    sub.add_parser("install-tools")
    for name in ("local-deps", "install"):
        sub.add_parser(name).add_argument("package")
    args = parser.parse_args(argv)
    quiet = not args.verbose
    try:
        if args.command == "install-tools":  # runs on the bare interpreter: no TOML parsing
            install_tools(args.python, quiet=quiet)
            return 0
        packages = discover()
        if args.command == "packages":
            print("\n".join(p.rel for p in packages.values()))
        elif args.command == "local-deps":
            package = find_package(args.package, packages)
            print("\n".join(d.rel for d in local_deps(package, packages)))
        elif args.command == "install":
            install_package(args.package, args.python, packages, quiet=quiet)
        else:
            problems = check(packages)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"workspace OK: {len(packages)} packages")
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
