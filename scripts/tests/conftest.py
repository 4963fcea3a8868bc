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

from scaffold import REPO, MiniRepo, add_library, run_ok


@pytest.fixture(scope="session")
def mini_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mini repo with both libraries installed once; copied per test by `mini_repo`."""
    root = tmp_path_factory.mktemp("mini") / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("monorepo", "mk"):
        shutil.copytree(REPO / "scripts" / folder, root / "scripts" / folder, ignore=ignore)
    for name in ("Makefile", "scripts/workspace.py", "scripts/Makefile"):
        shutil.copy2(REPO / name, root / name)
    # The real root configuration with a tools env of pytest only: the mini repo runs make
    # loops, not linters, and a full tools env would triple the cost of this fixture.
    pyproject = (REPO / "pyproject.toml").read_text()
    from monorepo.packages import load_toml  # here: importing scaffold put scripts/ on sys.path

    root_tools = load_toml(REPO / "pyproject.toml")["project"]["optional-dependencies"]["tools"]
    tools = "tools = " + json.dumps([r for r in root_tools if r.startswith("pytest")])
    mini = re.sub(r"^tools = \[.*?^\]", tools, pyproject, count=1, flags=re.S | re.M)
    (root / "pyproject.toml").write_text(mini)
    add_library(root, "beta", [], "def answer() -> int:\n    return 42\n")
    add_library(
        root,
        "alpha",
        ["beta>=0.1.0"],
        "from beta import answer\n\n\ndef doubled() -> int:\n    return 2 * answer()\n",
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
