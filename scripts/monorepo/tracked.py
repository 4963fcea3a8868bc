"""The files git would track below a folder: git's own listing, or a walk that mimics it.

dirschema's own ``rglob("*")`` would see every populated ``.venv`` (thousands of false errors).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the validator's error for a bare interpreter comes first
    import pathspec

# Folders the walk never enters, even when no .gitignore names them.
GENERATED_DIRS = frozenset(
    ".git .venv venv __pycache__ .mypy_cache .pytest_cache .ruff_cache .hypothesis .benchmarks"
    " .tox .nox .eggs .make htmlcov build dist node_modules".split()
)


def git_files(root: Path) -> list[str] | None:
    """What git would track below ``root`` (None outside a git work tree, or without git).

    Tracked files plus untracked ones no ignore rule hides, minus those deleted from the disk.
    """
    command = ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others"]
    try:
        listing = subprocess.run([*command, "--exclude-standard"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    names = set(listing.stdout.decode("utf-8", "surrogateescape").split("\0")) - {""}
    return sorted(name for name in names if os.path.lexists(root / name))


def walk_files(root: Path) -> list[str]:
    """The files below ``root`` that git would track, without git.

    It skips GENERATED_DIRS, ``*.egg-info`` and symbolic links (as dirschema does), and honours
    every ``.gitignore`` it meets, the deepest deciding, as git does.
    """
    import pathspec

    specs: dict[str, pathspec.GitIgnoreSpec] = {}

    def ignored(rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        for depth in range(len(parts) - 1, -1, -1):  # the deepest .gitignore first
            spec = specs.get("/".join(parts[:depth]))
            if spec is not None:
                result = spec.check_file("/".join(parts[depth:]) + ("/" if is_dir else ""))
                if result.include is not None:
                    return bool(result.include)
        return False

    files: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        rel_dir = Path(current).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        prefix = f"{rel_dir}/" if rel_dir else ""
        if ".gitignore" in filenames:
            lines = (Path(current) / ".gitignore").read_text(encoding="utf-8").splitlines()
            specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)
        dirnames[:] = [
            name
            for name in sorted(dirnames)
            if name not in GENERATED_DIRS
            and not name.endswith(".egg-info")
            and not (Path(current) / name).is_symlink()
            and not ignored(prefix + name, True)
        ]
        files += [
            prefix + name
            for name in sorted(filenames)
            if not (Path(current) / name).is_symlink() and not ignored(prefix + name, False)
        ]
    return files
