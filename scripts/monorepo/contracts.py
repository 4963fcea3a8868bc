"""The import rules between packages, checked by import-linter (`make lint`).

The contracts are derived from the pyprojects on every run, so a new package is covered with
no edit and the rules can never disagree with the declared dependencies: each package imports
only the local libraries its pyproject names (directly). As no package may depend on a service
(`workspace.py check`), that one rule is also "libraries never import services" and "services
never import each other".
"""

from __future__ import annotations

import configparser
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from monorepo.packages import Package, direct_local_deps


def contracts_ini(packages: dict[str, Package]) -> str:
    """An import-linter configuration: one contract per package, its undeclared ones forbidden."""
    config = configparser.ConfigParser()
    config["importlinter"] = {"root_packages": "\n".join(p.import_name for p in packages.values())}
    for package in packages.values():
        declared = {dep.import_name for dep in direct_local_deps(package, packages)}
        others = [p.import_name for p in packages.values() if p != package]
        if undeclared := [name for name in others if name not in declared]:
            config[f"importlinter:contract:{package.name}-imports-only-its-declared-libraries"] = {
                "name": f"{package.rel} imports no service and only the libraries it declares",
                "type": "forbidden",
                "source_modules": package.import_name,
                "forbidden_modules": "\n".join(undeclared),
                "allow_indirect_imports": "True",
            }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


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
