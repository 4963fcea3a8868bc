"""Fixtures of the scaffold's own tests (they run from the root tools env)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib (root config), which puts no test folder on
# sys.path; the test modules import their helpers from scaffold.py beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from scaffold import REPO, MiniRepo, run_ok


@pytest.fixture(scope="session")
def mini_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mini repo with both libraries installed once; copied per test by `mini_repo`."""
    root = tmp_path_factory.mktemp("mini") / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("monorepo", "mk"):
        shutil.copytree(REPO / "scripts" / folder, root / "scripts" / folder, ignore=ignore)
    for name in ("Makefile", "scripts/workspace.py", "scripts/Makefile"):
        shutil.copy2(REPO / name, root / name)
    # The real root configuration with only the pytest requirements of its dev and tools lists:
    # the mini repo runs make loops, not linters, and full lists would triple this fixture's cost.
    pyproject = (REPO / "pyproject.toml").read_text()
    from monorepo.packages import load_toml  # here: importing scaffold put scripts/ on sys.path
    from new_package import Spec, generate

    extras = load_toml(REPO / "pyproject.toml")["project"]["optional-dependencies"]
    for extra in ("dev", "tools"):
        kept = json.dumps([r for r in extras[extra] if r.startswith("pytest")])
        pattern = re.compile(rf"^{extra} = \[.*?^\]", re.S | re.M)
        pyproject = pattern.sub(f"{extra} = {kept}", pyproject, count=1)
    (root / "pyproject.toml").write_text(pyproject)
    for name, dependencies in (("beta", ""), ("alpha", '"beta>=0.1.0"')):
        generate(Spec("lib", name, f"The {name} library.", 8080, root))
        lib = root / "libs" / name / "pyproject.toml"
        lib.write_text(
            lib.read_text().replace("dependencies = []", f"dependencies = [{dependencies}]")
        )
    (root / "scripts" / "tests").mkdir()
    (root / "scripts" / "tests" / "test_mini.py").write_text("def test_ok():\n    assert True\n")
    run_ok(["make", f"PYTHON={sys.executable}", "install"], cwd=root)
    return root


@pytest.fixture
def shared_mini_repo(mini_repo_template: Path) -> MiniRepo:
    """The installed mini repo itself, for tests that install nothing: each leaves it as found."""
    return MiniRepo(mini_repo_template)


@pytest.fixture
def mini_repo(mini_repo_template: Path, tmp_path: Path) -> Iterator[MiniRepo]:
    """A fresh copy of the installed mini repo (venvs included, symlinks kept)."""
    root = tmp_path / "repo"
    shutil.copytree(mini_repo_template, root, symlinks=True)
    yield MiniRepo(root)
