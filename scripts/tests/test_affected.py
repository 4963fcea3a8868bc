"""`SINCE=<git ref>` selects what a change reaches, on a scratch git history."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from scaffold import REPO, commit_all, run, run_ok

# folder: local dependencies
PACKAGES = {"libs/base": [], "libs/mid": ["base"], "apps/front": ["mid"], "apps/solo": []}


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
    commit_all(root, tag="start")
    return root


@pytest.mark.parametrize(
    ("changed", "members", "reasons"),
    [
        (
            "libs/base/src/code.py",  # a library: it and its dependents
            ["apps/front", "libs/base", "libs/mid"],
            ["apps/front (depends on libs/base)", "libs/base (changed)"],
        ),
        ("apps/solo/src/new.py", ["apps/solo"], []),  # an app alone; untracked files count too
        (
            "pyproject.toml",  # a shared build file: everything
            ["apps/front", "apps/solo", "libs/base", "libs/mid", "scripts"],
            ["shared build file changed: pyproject.toml"],
        ),
    ],
)
def test_a_change_selects_what_it_reaches(
    history: Path, changed: str, members: list[str], reasons: list[str]
) -> None:
    with (history / changed).open("a") as file:
        file.write("y = 2\n" if changed.endswith(".py") else "\n")

    command = [sys.executable, str(history / "scripts/workspace.py"), "affected", "start"]
    output = run_ok(command, history)

    assert output.splitlines()[-1].split() == members
    for reason in reasons:
        assert reason in output


def test_the_root_loops_visit_only_the_selection() -> None:
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: all changed
    # The selection is asked for while the recipe runs (the tools env exists only then), so
    # `make -n` shows the question and `make affected` shows the answer the loop gets.
    dry = run_ok(["make", "-n", "test", f"SINCE={empty_tree}"], REPO)
    assert f"scripts/workspace.py affected {empty_tree}" in dry

    output = run_ok(["make", "affected", f"SINCE={empty_tree}"], REPO)
    # Every package is chosen (all of them changed); a copy made by the generator test has more.
    packages = sorted(str(p.parent.relative_to(REPO)) for p in REPO.glob("*/*/pyproject.toml"))
    packages = [p for p in packages if p.startswith(("apps/", "libs/"))]
    assert output.splitlines()[-1].split() == [*packages, "scripts"]
    assert "scripts (shared build file changed: " in output


@pytest.mark.parametrize("target", ["affected", "lint"])
def test_a_selection_that_cannot_be_answered_fails_the_command(target: str) -> None:
    result = run(["make", target, "SINCE=no-such-ref"], REPO)
    assert result.returncode != 0, result.output
    assert "no-such-ref" in result.output
    assert "OK in all 0" not in result.output
