"""Validate the monorepo layout against its dirschema schema (`make validate-structure`).

What dirschema sees is what git would track (monorepo/tracked.py), through the adapter and
workarounds of monorepo/dirschema_compat.py. The command-line entry point is
``scripts/validate-structure.py``; see ``docs/structure-validation.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from monorepo.dirschema_compat import (
    DirschemaUnavailableError,
    TrackedTree,
    Validator,
    load_validator,
)

__all__ = ["DirschemaUnavailableError", "TrackedTree", "Validator", "load_validator", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""Default repository: the parent of ``scripts/``."""

DEFAULT_SCHEMA = Path(".schemas/monorepo-structure.yaml")
"""Default schema, relative to the repository."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: the path it is about and the rule's description."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Report:
    """The outcome of one validation run."""

    violations: tuple[Violation, ...]
    paths_checked: int
    source: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the tree satisfies every rule."""
        return not self.violations


def validate_tree(tree: object, validator: Validator) -> list[Violation]:
    """Run ``validator`` over an adapter (or a ``Path``, with dirschema's own walk).

    Args:
        tree: A :class:`TrackedTree`, or a ``Path`` to let dirschema walk everything.
        validator: From :func:`load_validator`.

    Returns:
        The violations, sorted by path then message, without duplicates.
    """
    found: set[Violation] = set()
    for checked_path, errors in validator.validate(tree).items():
        for error in errors.values():
            path = error.path or checked_path or "."
            found.add(Violation(path, _message(error.err)))
    return sorted(found, key=lambda v: (v.path, v.message))


def _message(err: str | Mapping[str, Sequence[str]]) -> str:
    if isinstance(err, str):
        return err
    return "; ".join(f"{pointer}: {', '.join(msgs)}" for pointer, msgs in err.items())


def validate_repo(repo: Path, schema: Path | None = None) -> Report:
    """Validate ``repo`` against ``schema`` (default: the repo's own layout schema).

    Args:
        repo: The repository to check.
        schema: The schema file; defaults to ``repo / DEFAULT_SCHEMA``.

    Raises:
        DirschemaUnavailableError: dirschema cannot run on this interpreter.
        ValueError: The repository or the schema cannot be read.
    """
    if not repo.is_dir():
        raise ValueError(f"{repo}: not a directory")
    validator = load_validator(schema if schema is not None else repo / DEFAULT_SCHEMA)
    start = time.perf_counter()
    tree = TrackedTree.for_path(repo)
    violations = validate_tree(tree, validator)
    seconds = time.perf_counter() - start
    return Report(tuple(violations), len(tree.get_paths()), tree.source, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``scripts/validate-structure.py``).

    Prints one ``<path>: <what to fix>`` line per violation and exits 1, or prints a short
    success line and exits 0. Exits 2 when dirschema cannot run or the input is unreadable.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="validate-structure.py",
        description="Check the monorepo layout against its dirschema schema.",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO_ROOT,
        help="repository to check (default: the repository holding this script)",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=None,
        help=f"dirschema schema (default: <repo>/{DEFAULT_SCHEMA})",
    )
    args = parser.parse_args(argv)
    repo = cast(Path, args.repo)
    schema = cast("Path | None", args.schema)
    try:
        report = validate_repo(repo, schema)
    except (DirschemaUnavailableError, ValueError) as exc:
        print(f"validate-structure: {exc}", file=sys.stderr)
        return 2
    for violation in report.violations:
        print(violation)
    if report.violations:
        print(
            f"structure FAILED: {len(report.violations)} problem(s) in {report.paths_checked} "
            f"paths ({report.source}); each line above is '<path>: <what to fix>'",
            file=sys.stderr,
        )
        return 1
    print(
        f"structure OK: {report.paths_checked} paths checked ({report.source}) "
        f"in {report.seconds:.2f} s"
    )
    return 0
