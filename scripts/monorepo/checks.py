"""`workspace.py check`: one configuration, dependencies once, boundaries, lock drift."""

from __future__ import annotations

from monorepo.locks import drift
from monorepo.packages import ROOT, Package, WorkspaceError, load_toml, local_deps

# Tool configuration lives only in the root pyproject.toml: mypy and ruff do not merge a
# package's table with the root's, they replace it (and with it `strict = true`), and pytest
# takes its rootdir config from the repo root. Any of these in a package would silently win.
# (Separate config files, pytest.ini or ruff.toml, are the structure schema's to refuse.)
FORBIDDEN_TOOL_TABLES = ("ruff", "mypy", "pytest", "coverage", "pydantic-mypy")


def check_package(package: Package, packages: dict[str, Package], root_dev: list[str]) -> list[str]:
    """Problems with one package: graph, single configuration, declared-once dependencies."""
    problems: list[str] = []
    where = f"{package.rel}/pyproject.toml"
    try:
        local_deps(package, packages)
    except WorkspaceError as exc:
        problems.append(str(exc))
    data = load_toml(package.path / "pyproject.toml")
    problems += [
        f"{where}: [tool.{table}] would replace the root configuration; "
        "move the setting to the root pyproject.toml"
        for table in FORBIDDEN_TOOL_TABLES
        if table in data.get("tool", {})
    ]
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
    # Without package-dir and an explicit list, setuptools' editable install uses an import
    # hook that mypy cannot follow, so a library's types would be invisible to its users.
    if setuptools_table.get("package-dir") != {"": "."}:
        problems.append(f'{where}: [tool.setuptools] package-dir must be {{"" = "."}}')
    if missing := sorted(on_disk - declared):
        problems.append(f"{where}: [tool.setuptools] packages is missing {missing}")
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
    errors, notes = drift(packages)
    for note in notes:
        print(f"note: {note}")
    return problems + errors
