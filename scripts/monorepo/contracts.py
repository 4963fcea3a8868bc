"""The import rules between packages, checked by import-linter (`make lint`).

The contracts are derived from the pyprojects on every run, so a new package is covered with
no edit and the rules can never disagree with the declared dependencies:
* libraries never import services;
* services never import each other;
* each package imports only the local libraries its pyproject names (directly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from monorepo.packages import Package, direct_local_deps


def listed(names: list[str]) -> str:
    """An ini multi-line value: one name per indented line."""
    return "".join(f"\n    {name}" for name in names)


def contracts_ini(packages: dict[str, Package]) -> str:
    """An import-linter configuration holding the three rules for these packages."""
    libs = [p.import_name for p in packages.values() if p.kind == "libs"]
    apps = [p.import_name for p in packages.values() if p.kind == "apps"]
    lines = [
        "[importlinter]",
        "root_packages =",
        *(f"    {p.import_name}" for p in packages.values()),
    ]

    def contract(key: str, name: str, body: list[str]) -> None:
        lines.extend(["", f"[importlinter:contract:{key}]", f"name = {name}", *body])

    if libs and apps:
        contract(
            "libraries-never-import-services",
            "Libraries never import services",
            [
                "type = forbidden",
                f"source_modules ={listed(libs)}",
                f"forbidden_modules ={listed(apps)}",
            ],
        )
    if len(apps) > 1:
        contract(
            "services-never-import-each-other",
            "Services never import each other",
            ["type = independence", f"modules ={listed(apps)}"],
        )
    for package in packages.values():
        declared = {dep.import_name for dep in direct_local_deps(package, packages)}
        undeclared = [lib for lib in libs if lib not in declared and lib != package.import_name]
        if undeclared:
            contract(
                f"{package.name}-imports-only-its-declared-libraries",
                f"{package.rel} imports only the local libraries its pyproject.toml names",
                [
                    "type = forbidden",
                    f"source_modules = {package.import_name}",
                    f"forbidden_modules ={listed(undeclared)}",
                    "allow_indirect_imports = True",
                ],
            )
    return "\n".join(lines) + "\n"


def lint_imports(packages: dict[str, Package]) -> int:
    """Run import-linter (from this interpreter's env) over the packages' sources."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "importlinter.ini"
        config.write_text(contracts_ini(packages))
        path = os.pathsep.join(str(p.path) for p in packages.values())
        env = {**os.environ, "PYTHONPATH": path}
        linter = Path(sys.executable).parent / "lint-imports"
        command = [str(linter), "--config", str(config), "--no-cache"]
        return subprocess.run(command, env=env, check=False).returncode
