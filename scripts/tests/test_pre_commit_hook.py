"""The pre-commit hook (.codex/hooks/pre-commit), driven in a scratch git repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scaffold import REPO, TOOLS_VENV, Result, copy_tracked_tree, run

# Each test commits in a copy of the repo through the real hook: `make test-all` and CI.
pytestmark = pytest.mark.slow

GOOD = 'def double(value: int) -> int:\n    """Twice `value`."""\n    return 2 * value\n'
UNFORMATTED = 'def double(value: int) -> int:\n    """Twice `value`."""\n    return 2*value\n'
LINT_ERROR = (
    'import os\n\n\ndef double(value: int) -> int:\n    """Twice."""\n    return 2 * value\n'
)


def git(repo: Path, *args: str) -> Result:
    return run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=repo
    )


@pytest.fixture(scope="module")
def scratch_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repo's files (no venvs) as a fresh git repo with one commit."""
    root = tmp_path_factory.mktemp("hook") / "repo"
    copy_tracked_tree(root)
    assert git(root, "init", "-q").returncode == 0
    assert git(root, "add", "-A").returncode == 0
    assert git(root, "commit", "-q", "--no-verify", "-m", "copy").returncode == 0
    return root


@pytest.fixture
def scratch(scratch_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the scratch repo, with the hook installed by `make install-hooks` and
    the real tools env reachable as .venv (excluded from git, as .gitignore does for a real one).
    """
    root = tmp_path / "repo"
    shutil.copytree(scratch_template, root, symlinks=True)
    (root / ".venv").symlink_to(TOOLS_VENV)
    with (root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".venv\n")
    result = run(["make", "install-hooks"], cwd=root)
    assert result.returncode == 0, result.output
    assert "git commit --no-verify" in result.output
    return root


def commit(repo: Path, *paths: str) -> Result:
    assert git(repo, "add", *paths).returncode == 0
    return git(repo, "commit", "-m", "change")


def test_make_install_hooks_installs_the_hook_executable(scratch: Path) -> None:
    hook = scratch / ".git" / "hooks" / "pre-commit"

    assert hook.read_text() == (REPO / ".codex" / "hooks" / "pre-commit").read_text()
    assert hook.stat().st_mode & 0o111


def test_good_staged_file_is_accepted(scratch: Path) -> None:
    (scratch / "scripts" / "helper.py").write_text(GOOD)

    result = commit(scratch, "scripts/helper.py")

    assert result.returncode == 0, result.output
    assert "pre-commit: OK (1 staged .py file(s) checked with ruff; structure: OK)" in result.output


@pytest.mark.parametrize(
    ("content", "problem"),
    [(UNFORMATTED, "not formatted"), (LINT_ERROR, "ruff check found problems")],
)
def test_bad_staged_file_is_refused_and_named(scratch: Path, content: str, problem: str) -> None:
    (scratch / "scripts" / "helper.py").write_text(content)

    result = commit(scratch, "scripts/helper.py")

    assert result.returncode != 0
    assert f"pre-commit: scripts/helper.py: {problem}" in result.output
    assert "git commit --no-verify" in result.output
    assert git(scratch, "log", "--oneline").output.count("\n") == 1  # nothing committed


def test_package_file_is_checked_from_its_package_folder(scratch: Path) -> None:
    path = scratch / "libs" / "shared-audio" / "shared_audio" / "extra.py"
    path.write_text(LINT_ERROR)

    result = commit(scratch, "libs/shared-audio/shared_audio/extra.py")

    assert result.returncode != 0
    assert "pre-commit: libs/shared-audio/shared_audio/extra.py: ruff check" in result.output
    assert "F401" in result.output  # ruff's own finding is shown


def test_the_staged_content_is_checked_not_the_working_tree(scratch: Path) -> None:
    path = scratch / "scripts" / "helper.py"
    path.write_text(UNFORMATTED)
    assert git(scratch, "add", "scripts/helper.py").returncode == 0
    path.write_text(GOOD)  # fixed on disk, but not staged

    result = git(scratch, "commit", "-m", "change")

    assert result.returncode != 0
    assert "scripts/helper.py: not formatted" in result.output


def test_unstaged_files_do_not_block_a_commit(scratch: Path) -> None:
    (scratch / "scripts" / "broken.py").write_text(LINT_ERROR)  # never staged
    (scratch / "scripts" / "helper.py").write_text(GOOD)

    result = commit(scratch, "scripts/helper.py")

    assert result.returncode == 0, result.output


def test_structure_violation_is_refused(scratch: Path) -> None:
    (scratch / "specs" / "notes.md").write_text("# not a numbered spec\n")

    result = commit(scratch, "specs/notes.md")

    assert result.returncode != 0
    assert "specs/notes.md" in result.output
    assert "failing: structure" in result.output


def test_no_verify_bypasses_the_hook(scratch: Path) -> None:
    (scratch / "scripts" / "helper.py").write_text(UNFORMATTED)
    assert git(scratch, "add", "scripts/helper.py").returncode == 0

    result = git(scratch, "commit", "--no-verify", "-m", "anyway")

    assert result.returncode == 0, result.output
    assert "pre-commit" not in result.output
