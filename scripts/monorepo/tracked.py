"""The files git would track below a folder: git's own listing, or a walk that mimics it.

dirschema walks everything with ``rglob("*")``: a populated ``.venv`` alone adds thousands of
paths (and false errors). The validator and the repo-copying tests and benchmarks use this
listing instead: tracked files plus untracked files that no ignore rule hides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pathspec

GENERATED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".benchmarks",
        ".tox",
        ".nox",
        ".eggs",
        ".make",
        "htmlcov",
        "build",
        "dist",
        "node_modules",
    }
)
"""Folders the non-git walk never enters, even when no .gitignore names them."""


def git_files(root: Path) -> list[str] | None:
    """List the files git would track below ``root``, or None outside a git checkout.

    That is ``git ls-files --cached --others --exclude-standard``: tracked files plus
    untracked files that no ignore rule hides, minus tracked files deleted from the worktree.

    Args:
        root: A directory inside (or at the top of) a git work tree.
    """
    git = shutil.which("git")
    if git is None:
        return None
    try:
        inside = subprocess.run(
            [git, "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            check=False,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listing = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    names = {name for name in listing.stdout.decode("utf-8", "surrogateescape").split("\0") if name}
    return sorted(name for name in names if os.path.lexists(root / name))


def walk_files(root: Path) -> list[str]:
    """List the files below ``root`` that git would track, without git.

    The walk never enters ``.git`` nor the generated folders of :data:`GENERATED_DIRS` (or any
    ``*.egg-info``), and it honours every ``.gitignore`` it meets, deeper files taking
    precedence, as git does. Symbolic links are skipped, as dirschema itself does.

    Args:
        root: The directory to walk.
    """
    specs: dict[str, pathspec.GitIgnoreSpec] = {}
    files: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        rel_dir = Path(current).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if ".gitignore" in filenames:
            lines = (Path(current) / ".gitignore").read_text(encoding="utf-8").splitlines()
            specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if (
                name in GENERATED_DIRS
                or name.endswith(".egg-info")
                or (Path(current) / name).is_symlink()
                or _ignored(specs, rel, is_dir=True)
            ):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not (Path(current) / name).is_symlink() and not _ignored(specs, rel, is_dir=False):
                files.append(rel)
    return files


def _ignored(specs: Mapping[str, pathspec.GitIgnoreSpec], rel: str, *, is_dir: bool) -> bool:
    """Return whether the .gitignore files in ``specs`` ignore ``rel`` (deepest file wins)."""
    for base in _ancestors(rel):
        spec = specs.get(base)
        if spec is None:
            continue
        inner = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(inner + "/" if is_dir else inner)
        if result.include is not None:
            return bool(result.include)
    return False


def _ancestors(rel: str) -> Iterator[str]:
    """Yield the folders above ``rel``, deepest first, ending with the root ``""``."""
    parent = rel.rpartition("/")[0]
    while parent:
        yield parent
        parent = parent.rpartition("/")[0]
    yield ""
