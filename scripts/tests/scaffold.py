"""Helpers of the scaffold's own tests (they run from the root tools env)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The repo's own packages (a copy may hold more: one `make new-service` made).
PACKAGES = ("apps/sts-service", "apps/stream-worker", "libs/shared-audio", "libs/shared-utils")
TOOLS_VENV = REPO / ".venv"
sys.path.insert(0, str(REPO / "scripts"))  # the build machinery under test: not installed

from monorepo.packages import discover  # noqa: E402  (needs the path above)
from monorepo.tracked import git_files  # noqa: E402  (needs the path above)


@dataclass(frozen=True)
class Result:
    """What a command did."""

    returncode: int
    output: str  # stdout and stderr, interleaved as printed


# What a make running these tests exports (its flags, its command line's variables, the build's
# switches): a make a test starts would skip its own interpreter check, or rerun slow tests.
_OUTER_MAKE_VARIABLES = (
    *("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON", "PYTHON_ID_FRESH", "VERBOSE"),
    *("SLOW", "SINCE", "LOCKED", "ENGINES"),
)


def outside_make_env() -> dict[str, str]:
    """This process's environment without what an outer make exported into it."""
    return {k: v for k, v in os.environ.items() if k not in _OUTER_MAKE_VARIABLES}


def run(
    command: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
) -> Result:
    """Run a command and capture its combined output."""
    full_env = {**outside_make_env(), **(env or {})}
    done = subprocess.run(
        command,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout)


def run_ok(command: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a command that must succeed; its combined output."""
    result = run(command, cwd, env, timeout=1800)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.output}"
    return result.output


def git(repo: Path, *args: str) -> Result:
    """Run git in `repo` as a test author (no global configuration needed)."""
    config = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    return run(["git", *config, "-c", "init.defaultBranch=main", *args], cwd=repo)


def commit_all(root: Path, tag: str = "") -> None:
    """Make `root` a git repository with every file committed (and tagged `tag`)."""
    steps = [["init", "-q", "--template="], ["add", "-A"], ["commit", "-qnm", "copy"]]
    for step in steps + ([["tag", tag]] if tag else []):  # --template=: no sample hooks, faster
        done = git(root, *step)
        assert done.returncode == 0, done.output


def restore(repo: Path, ref: str = "HEAD", clean: str = "-fdq") -> None:
    """Put a git copy back as committed at `ref`: changes undone, new files removed."""
    for step in (["reset", "-q", "--hard", ref], ["clean", clean]):
        done = git(repo, *step)
        assert done.returncode == 0, done.output


def copy_tracked_tree(target: Path, source: Path = REPO) -> None:
    """Copy what git would track in `source` (no venvs, caches or build outputs) to `target`."""
    for name in git_files(source) or []:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)


@functools.cache
def make_help_targets(folder: Path) -> frozenset[str]:
    """The targets `make help` lists in `folder`."""
    output = run_ok(["make", "help"], cwd=folder)
    return frozenset(re.findall(r"^  ([a-zA-Z0-9_.-]+) ", output, re.MULTILINE))


def api_page_gaps(root: Path = REPO) -> list[str]:
    """The anchors (one per package and public module) the built API page lacks."""
    api = (root / "docs" / "_build" / "html" / "api.html").read_text()
    anchors = []
    for package in discover(root).values():
        modules = sorted((package.path / package.import_name).glob("*.py"))
        anchors.append(package.name)
        anchors += [f"module-{package.import_name}.{m.stem}" for m in modules if m.name[0] != "_"]
    return [anchor for anchor in anchors if f'id="{anchor}"' not in api]


def package_venv_python(package: str) -> Path:
    """A real package's venv interpreter; fails (never skips) when `make install` was not run."""
    python = REPO / package / ".venv" / "bin" / "python"
    assert python.exists(), f"{package}/.venv is missing: run `make install` at the repo root"
    return python


@dataclass
class MiniRepo:
    """The real root Makefile, fragments and installer over two libraries as `make new-lib`
    makes them (`libs/alpha` depends on `libs/beta`), whose only dev tools are pytest's."""

    root: Path

    def make(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """Run make in the mini repo with this interpreter as PYTHON."""
        return run(["make", f"PYTHON={sys.executable}", *args], cwd=self.root, env=env)

    def make_ok(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """`make` as above, which must succeed: its output."""
        return run_ok(["make", f"PYTHON={sys.executable}", *args], self.root, env)
