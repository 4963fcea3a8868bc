"""Validate the monorepo layout with dirschema, looking only at what git would track.

dirschema 0.1.0 walks a directory with ``rglob("*")``: a populated ``.venv`` adds thousands of
paths (and false errors). This module hands dirschema an adapter (its ``IDirectory``
interface) that lists only what git would track -- tracked files plus untracked files that are
not ignored -- and, outside a git checkout, a walk that skips ignored and generated folders.

The command-line entry point is ``scripts/validate-structure.py``; see
``docs/structure-validation.md``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast

import pathspec

REPO_ROOT = Path(__file__).resolve().parent.parent
"""Default repository: the parent of ``scripts/``."""

DEFAULT_SCHEMA = Path(".schemas/monorepo-structure.yaml")
"""Default schema, relative to the repository."""

INSTALL_HINT = "run `make install` at the repo root, then `make validate-structure`"
"""What to do when dirschema cannot run: build the root tools environment and use it."""

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


class DirschemaUnavailableError(RuntimeError):
    """dirschema cannot be imported or run by this interpreter; the message says what to do."""


class _ValidationError(Protocol):
    """The part of ``dirschema.validate.DSValidationError`` this module reads."""

    path: str
    err: str | Mapping[str, Sequence[str]]


_Errors = Mapping[str, Mapping[tuple[str | int, ...], _ValidationError]]


class _Validator(Protocol):
    """The part of ``dirschema.validate.DSValidator`` this module uses."""

    def validate(self, root_path: object) -> _Errors:
        """Return the errors found under ``root_path`` (empty when valid)."""


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


# ---------------------------------------------------------------------------------------------
# dirschema import (isolated: dirschema is untyped and has import-time quirks)
# ---------------------------------------------------------------------------------------------
def _import_dirschema() -> tuple[types.ModuleType, types.ModuleType]:
    """Import ``dirschema.adapters`` and ``dirschema.validate``.

    dirschema 0.1.0 evaluates the annotation ``h5py.File`` when ``dirschema.adapters`` is
    imported, so the import raises ``NameError`` unless h5py (its ``[h5]`` extra: h5py and
    numpy, ~55 MB) is installed. HDF5 files are never validated here, so when h5py is absent a
    placeholder module stands in for it during the import only, and dirschema's HDF5 support
    stays switched off.

    Raises:
        DirschemaUnavailableError: dirschema is missing or cannot run on this interpreter.
    """
    placeholder = "dirschema.adapters" not in sys.modules and not _h5py_installed()
    if placeholder:
        stub = types.ModuleType("h5py", "Placeholder for dirschema's import-time annotation.")
        stub.__dict__["File"] = type("File", (), {})  # what the annotation looks up
        sys.modules["h5py"] = stub
    try:
        adapters = importlib.import_module("dirschema.adapters")
        validate = importlib.import_module("dirschema.validate")
    except ImportError as exc:
        raise DirschemaUnavailableError(
            f"dirschema is not installed for {sys.executable} ({exc}): {INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # pydantic 2, a broken install: any import-time failure
        raise DirschemaUnavailableError(_cannot_run_message(exc)) from exc
    finally:
        if placeholder:
            sys.modules.pop("h5py", None)
    if placeholder:
        adapters.__dict__["_has_h5"] = False  # dirschema's HDF5 switch: keep HDF5 off
    return adapters, validate


def _h5py_installed() -> bool:
    return importlib.util.find_spec("h5py") is not None


def _cannot_run_message(exc: BaseException) -> str:
    try:
        pydantic_version = importlib.metadata.version("pydantic")
    except importlib.metadata.PackageNotFoundError:
        pydantic_version = "none"
    return (
        f"dirschema 0.1.0 cannot run on {sys.executable} (Python "
        f"{sys.version_info.major}.{sys.version_info.minor}, pydantic {pydantic_version}): "
        f"{type(exc).__name__}: {exc}. It needs pydantic<2, typer<0.10 and click<8.2, which "
        f"only the root tools environment (.venv) pins: {INSTALL_HINT}"
    )


# ---------------------------------------------------------------------------------------------
# The adapter: the paths git would track
# ---------------------------------------------------------------------------------------------
class TrackedTree:
    """A dirschema directory adapter over an explicit list of files below ``root``.

    It implements dirschema's ``IDirectory`` interface (and is registered as a virtual
    subclass of it once dirschema is imported). Folders are the parents of the listed files,
    as in git, which tracks no empty folder. Existence checks are set lookups: nothing outside
    the list exists for the schema, whatever lies on disk.

    Args:
        root: The directory the relative paths are below.
        files: Relative POSIX paths of the files to validate.
        source: How the list was made (``"git"`` or ``"walk"``), for reports.
    """

    def __init__(self, root: Path, files: Iterable[str], source: str) -> None:
        self.root = root
        self.source = source
        self.files = frozenset(files)
        dirs: set[str] = {""}
        for name in self.files:
            parent = name.rpartition("/")[0]
            while parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        self.dirs = frozenset(dirs)

    @classmethod
    def for_path(cls, path: Path) -> TrackedTree:
        """Build the adapter for ``path``: git's view in a checkout, else a filtered walk.

        Args:
            path: The repository (or any directory) to validate.
        """
        files = git_files(path)
        if files is not None:
            return cls(path, files, "git")
        return cls(path, walk_files(path), "walk")

    def get_paths(self) -> list[str]:
        """Return every path to check: the root (``""``), each folder and each file, sorted."""
        return sorted(self.dirs | self.files)

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a folder holding at least one listed file (or the root)."""
        return path.rstrip("/") in self.dirs

    def is_file(self, path: str) -> bool:
        """Return whether ``path`` is a listed file."""
        return path in self.files

    def open_file(self, path: str) -> IO[bytes] | None:
        """Return a listed file's bytes for ``valid``/``validMeta`` rules (None if unlisted).

        The bytes are read into memory: dirschema never closes the handles it opens.
        """
        if path not in self.files:
            return None
        try:
            return io.BytesIO((self.root / path).read_bytes())
        except OSError:
            return None

    def decode_json(self, data: IO[bytes], path: str) -> object:
        """Parse a file's bytes as JSON, then YAML, as dirschema's own adapters do.

        Args:
            data: The open file.
            path: Its path (unused, part of dirschema's interface).
        """
        raw = data.read()
        try:
            return cast(object, json.loads(raw))
        except ValueError:
            yaml_module = importlib.import_module("ruamel.yaml")
            try:
                return cast(object, yaml_module.YAML(typ="safe").load(io.BytesIO(raw)))
            except Exception:  # ruamel's parser errors share no public base class
                return None

    def load_meta(self, path: str) -> object:
        """Load a listed file as JSON/YAML metadata (None if unlisted or unparsable)."""
        handle = self.open_file(path)
        return None if handle is None else self.decode_json(handle, path)


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


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def load_validator(schema: Path) -> _Validator:
    """Load a dirschema schema file into a validator.

    Args:
        schema: The YAML (or JSON) schema in dirschema's rule language.

    Raises:
        DirschemaUnavailableError: dirschema cannot be imported on this interpreter.
        ValueError: The schema is missing or is not a valid dirschema schema.
    """
    adapters, validate = _import_dirschema()
    adapters.IDirectory.register(TrackedTree)
    if not schema.is_file():
        raise ValueError(f"{schema}: schema file not found")
    try:
        return cast(_Validator, validate.DSValidator(schema.resolve()))
    except Exception as exc:  # pydantic/jsonref/ruamel errors: report them, naming the file
        raise ValueError(f"{schema}: not a valid dirschema schema: {exc}") from exc


def validate_tree(tree: object, validator: _Validator) -> list[Violation]:
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
