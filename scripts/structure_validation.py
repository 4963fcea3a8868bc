"""Validate the monorepo layout against its dirschema schema (`make validate-structure`).

dirschema sees what git would track (monorepo/tracked.py), through the adapter and workarounds
of monorepo/dirschema_compat.py. The command line is scripts/validate-structure.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from monorepo.dirschema_compat import (
    DirschemaUnavailableError,
    TrackedTree,
    Validator,
    load_validator,
)

__all__ = ["DirschemaUnavailableError", "TrackedTree", "Validator", "load_validator", "main"]

DEFAULT_SCHEMA = Path(".schemas/monorepo-structure.yaml")  # relative to the repository


class Violation(NamedTuple):
    """One broken rule: the path it is about and the rule's description."""

    path: str
    message: str


def validate_tree(tree: object, validator: Validator) -> list[Violation]:
    """The violations in ``tree`` (a TrackedTree, or a Path for dirschema's own walk), sorted."""
    found: set[Violation] = set()
    for checked_path, errors in validator.validate(tree).items():
        for error in errors.values():
            err = error.err
            if not isinstance(err, str):
                err = "; ".join(f"{pointer}: {', '.join(msgs)}" for pointer, msgs in err.items())
            found.add(Violation(error.path or checked_path or ".", err))
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    """One ``<path>: <what to fix>`` line per violation and 1, or a success line and 0.

    2 when dirschema cannot run or the input is unreadable.
    """
    parser = argparse.ArgumentParser(
        prog="validate-structure.py",
        description="Check the monorepo layout against its dirschema schema.",
    )
    repo_default = Path(__file__).resolve().parents[1]
    parser.add_argument("--repo", type=Path, default=repo_default, help="default: this repo")
    parser.add_argument("--schema", type=Path, help=f"default: <repo>/{DEFAULT_SCHEMA}")
    args = parser.parse_args(argv)
    repo: Path = args.repo
    try:
        if not repo.is_dir():
            raise ValueError(f"{repo}: not a directory")
        validator = load_validator(args.schema or repo / DEFAULT_SCHEMA)
        start = time.perf_counter()
        tree = TrackedTree.for_path(repo)
        violations = validate_tree(tree, validator)
    except (DirschemaUnavailableError, ValueError) as exc:
        print(f"validate-structure: {exc}", file=sys.stderr)
        return 2
    checked = f"{len(tree.get_paths())} paths ({tree.source})"
    for violation in violations:
        print(f"{violation.path}: {violation.message}")
    if violations:
        print(
            f"structure FAILED: {len(violations)} problem(s) in {checked}; "
            "each line above is '<path>: <what to fix>'",
            file=sys.stderr,
        )
        return 1
    print(
        f"structure OK: {len(tree.get_paths())} paths checked ({tree.source}) "
        f"in {time.perf_counter() - start:.2f} s"
    )
    return 0
