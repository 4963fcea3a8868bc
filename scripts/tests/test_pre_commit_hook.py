"""The pre-commit hook (.codex/hooks/pre-commit), driven in a scratch git repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scaffold import REPO, TOOLS_VENV, commit_all, copy_tracked_tree, git, restore, run

# Each test commits in a copy of the repo through the real hook: `make test-all` and CI.
pytestmark = pytest.mark.slow

GOOD = 'def double(value: int) -> int:\n    """Twice `value`."""\n    return 2 * value\n'
UNFORMATTED = 'def double(value: int) -> int:\n    """Twice `value`."""\n    return 2*value\n'
LINT_ERROR = (
    'import os\n\n\ndef double(value: int) -> int:\n    """Twice."""\n    return 2 * value\n'
)
HELPER = "scripts/helper.py"
PACKAGE_FILE = "libs/shared-audio/shared_audio/extra.py"


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's files committed (tag `copy`), the real tools env as an untracked .venv, and the
    hook installed by `make install-hooks`: a copy of .codex/hooks/pre-commit, executable."""
    root = tmp_path_factory.mktemp("hook") / "repo"
    copy_tracked_tree(root)
    commit_all(root, tag="copy")
    (root / ".venv").symlink_to(TOOLS_VENV)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text(".venv\n")
    result = run(["make", "install-hooks"], cwd=root)
    assert result.returncode == 0, result.output
    assert "git commit --no-verify" in result.output
    hook = root / ".git" / "hooks" / "pre-commit"
    assert hook.read_text() == (REPO / ".codex" / "hooks" / "pre-commit").read_text()
    assert hook.stat().st_mode & 0o111
    return root


@pytest.fixture
def scratch(scratch_repo: Path) -> Iterator[Path]:
    yield scratch_repo
    restore(scratch_repo, "copy")


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").output


# (staged files, files then written to the working tree only, expected in the output);
# no expected text means the commit is accepted.
CASES: dict[str, tuple[dict[str, str], dict[str, str], list[str]]] = {
    "good-file": ({HELPER: GOOD}, {}, []),
    "unformatted": ({HELPER: UNFORMATTED}, {}, [f"pre-commit: {HELPER}: not formatted"]),
    "lint-error": ({HELPER: LINT_ERROR}, {}, [f"pre-commit: {HELPER}: ruff check found problems"]),
    # Checked from its package folder, and ruff's own finding is shown.
    "package-file": (
        {PACKAGE_FILE: LINT_ERROR},
        {},
        [f"pre-commit: {PACKAGE_FILE}: ruff check", "F401"],
    ),
    "staged-content-not-worktree": (
        {HELPER: UNFORMATTED},
        {HELPER: GOOD},
        [f"{HELPER}: not formatted"],
    ),
    "unstaged-files-ignored": ({HELPER: GOOD}, {"scripts/broken.py": LINT_ERROR}, []),
    "structure": (
        {"specs/notes.md": "# not numbered\n"},
        {},
        ["specs/notes.md", "failing: structure"],
    ),
}


@pytest.mark.parametrize(("staged", "unstaged", "refusal"), CASES.values(), ids=CASES.keys())
def test_the_hook_checks_what_is_staged(
    scratch: Path, staged: dict[str, str], unstaged: dict[str, str], refusal: list[str]
) -> None:
    for path, text in staged.items():
        (scratch / path).write_text(text)
    assert git(scratch, "add", *staged).returncode == 0
    for path, text in unstaged.items():
        (scratch / path).write_text(text)
    before = head(scratch)

    result = git(scratch, "commit", "-m", "change")

    if not refusal:
        assert result.returncode == 0, result.output
        assert head(scratch) != before
        assert (
            "pre-commit: OK (1 staged .py file(s) checked with ruff; structure: OK)"
            in result.output
        )
        return
    assert result.returncode != 0
    for expected in [*refusal, "git commit --no-verify"]:
        assert expected in result.output, result.output
    assert head(scratch) == before  # nothing committed
    bypass = git(scratch, "commit", "--no-verify", "-m", "anyway")  # as the refusal says
    assert bypass.returncode == 0 and "pre-commit" not in bypass.output, bypass.output
