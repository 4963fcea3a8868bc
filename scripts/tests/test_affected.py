"""`SINCE=<git ref>` selects what a change reaches, on a scratch git history."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scaffold import REPO, run

# folder: local dependencies
PACKAGES = {"libs/base": [], "libs/mid": ["base"], "apps/front": ["mid"], "apps/solo": []}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A repo with the installer and four packages, committed once (tag `start`)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts/monorepo", root / "scripts/monorepo")
    shutil.copy2(REPO / "scripts/workspace.py", root / "scripts/workspace.py")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    for folder, deps in PACKAGES.items():
        (root / folder / "src").mkdir(parents=True)
        (root / folder / "src" / "code.py").write_text("x = 1\n")
        name = folder.split("/")[1]
        (root / folder / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = {deps}\n'
        )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    git(root, "tag", "start")
    return root


def affected(root: Path) -> tuple[list[str], str]:
    command = [sys.executable, str(root / "scripts/workspace.py"), "affected", "start"]
    result = run(command, root)
    assert result.returncode == 0, result.output
    members = result.output.splitlines()[-1].split()
    return members, result.output


def test_a_library_change_selects_it_and_its_dependents(history: Path) -> None:
    (history / "libs/base/src/code.py").write_text("x = 2\n")
    members, output = affected(history)
    assert members == ["apps/front", "libs/base", "libs/mid"]
    assert "apps/front (depends on libs/base)" in output
    assert "libs/base (changed)" in output


def test_an_app_change_selects_only_that_app(history: Path) -> None:
    (history / "apps/solo/src/new.py").write_text("y = 1\n")  # untracked counts too
    assert affected(history)[0] == ["apps/solo"]


def test_a_root_change_selects_everything(history: Path) -> None:
    (history / "pyproject.toml").write_text((history / "pyproject.toml").read_text() + "\n")
    members, output = affected(history)
    assert members == ["apps/front", "apps/solo", "libs/base", "libs/mid", "scripts"]
    assert "shared build file changed: pyproject.toml" in output


def test_the_root_loops_visit_only_the_selection() -> None:
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: all changed
    result = run(["make", "-n", "test", f"SINCE={empty_tree}"], REPO)
    assert result.returncode == 0, result.output
    # Every package is chosen (all of them changed); a copy made by the generator test has more.
    packages = sorted(str(p.parent.relative_to(REPO)) for p in REPO.glob("*/*/pyproject.toml"))
    packages = [p for p in packages if p.startswith(("apps/", "libs/"))]
    assert f"for member in {' '.join(packages)}" in result.output
    assert f"SINCE={empty_tree}: scripts (shared build file changed: " in result.output
