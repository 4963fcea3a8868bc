"""Validate the monorepo layout against its dirschema schema (`make validate-structure`).

dirschema sees only what git would track (monorepo/tracked.py). Every workaround dirschema 0.1.0
needs is in this module; decision 0006 says why each one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import sys
import time
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple, Protocol, cast

from monorepo.tracked import git_files, walk_files

INSTALL_HINT = "run `make install` at the repo root, then `make validate-structure`"


class DirschemaUnavailableError(RuntimeError):
    """dirschema cannot be imported or run by this interpreter; the message says what to do."""


class Validator(Protocol):
    """The part of ``dirschema.validate.DSValidator`` this module uses."""

    def validate(self, root_path: object) -> Mapping[str, Mapping[tuple[str | int, ...], Any]]:
        """The errors found under ``root_path`` (empty when valid)."""


def _import_dirschema() -> tuple[types.ModuleType, types.ModuleType]:
    """``dirschema.adapters`` and ``dirschema.validate``, or DirschemaUnavailableError.

    The h5py placeholder and ``pydantic.v1`` stand in during the import only (decision 0006).
    """
    first_import = "dirschema.adapters" not in sys.modules
    placeholder = first_import and not importlib.util.find_spec("h5py")
    pydantic_module = sys.modules.get("pydantic")
    if placeholder:
        stub = types.ModuleType("h5py", "Placeholder for dirschema's import-time annotation.")
        stub.__dict__["File"] = type("File", (), {})  # what the annotation looks up
        sys.modules["h5py"] = stub
    try:
        if first_import and importlib.util.find_spec("pydantic.v1"):
            pydantic_module = importlib.import_module("pydantic")
            sys.modules["pydantic"] = importlib.import_module("pydantic.v1")
        adapters = importlib.import_module("dirschema.adapters")
        validate = importlib.import_module("dirschema.validate")
    except ImportError as exc:
        raise DirschemaUnavailableError(
            f"dirschema is not installed for {sys.executable} ({exc}): {INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # a broken install or a missing pin: any import-time failure
        raise DirschemaUnavailableError(
            f"dirschema 0.1.0 cannot run on {sys.executable} ({type(exc).__name__}: {exc}): it "
            f"needs pydantic.v1, typer<0.10 and click<8.2, as the root tools env pins them: "
            f"{INSTALL_HINT}"
        ) from exc
    finally:
        if pydantic_module is not None:
            sys.modules["pydantic"] = pydantic_module
        if placeholder:
            sys.modules.pop("h5py", None)
    if placeholder:
        adapters.__dict__["_has_h5"] = False  # dirschema's HDF5 switch: keep HDF5 off
    return adapters, validate


class TrackedTree:
    """dirschema's ``IDirectory`` over an explicit list of files below ``root``.

    Folders are the parents of the listed files (git tracks no empty folder); nothing outside
    the list exists for the schema, whatever lies on disk. ``source`` says how the list was
    made (``"git"`` or ``"walk"``).
    """

    def __init__(self, root: Path, files: Iterable[str], source: str) -> None:
        self.root, self.source, self.files = root, source, frozenset(files)
        parents = {str(parent) for name in self.files for parent in PurePosixPath(name).parents}
        self.dirs = frozenset((parents - {"."}) | {""})  # the root is "", not "."

    @classmethod
    def for_path(cls, path: Path) -> TrackedTree:
        """The files of ``path`` as git lists them in a checkout, else as a walk mimics it."""
        files = git_files(path)
        return cls(path, walk_files(path), "walk") if files is None else cls(path, files, "git")

    def get_paths(self) -> list[str]:
        """Every path to check: the root (``""``), each folder and each file, sorted."""
        return sorted(self.dirs | self.files)

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a folder holding at least one listed file (or the root)."""
        return path.rstrip("/") in self.dirs

    def is_file(self, path: str) -> bool:
        """Whether ``path`` is a listed file."""
        return path in self.files

    def open_file(self, path: str) -> IO[bytes] | None:
        """A listed file's bytes, read into memory: dirschema never closes what it opens."""
        try:
            return io.BytesIO((self.root / path).read_bytes()) if path in self.files else None
        except OSError:
            return None

    def decode_json(self, data: IO[bytes], path: str) -> object:
        """A file's bytes as JSON, else YAML (None if neither).

        dirschema's own tries YAML on the stream that the JSON attempt already read to its end.
        """
        from ruamel.yaml import YAML  # the tools env's: a bare interpreter lacks it
        from ruamel.yaml.error import YAMLError

        raw = data.read()
        try:
            return cast(object, json.loads(raw))
        except ValueError:
            try:
                return cast(object, YAML(typ="safe").load(raw))
            except YAMLError:
                return None


def load_validator(schema: Path) -> Validator:
    """A validator for a dirschema schema file; ValueError if it is missing or invalid."""
    adapters, validate = _import_dirschema()
    adapters.IDirectory.register(TrackedTree)
    if not schema.is_file():
        raise ValueError(f"{schema}: schema file not found")
    try:
        return cast(Validator, validate.DSValidator(schema.resolve()))
    except Exception as exc:  # pydantic/jsonref/ruamel errors: report them, naming the file
        raise ValueError(f"{schema}: not a valid dirschema schema: {exc}") from exc


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
    checked = f"{len(tree.get_paths())} paths checked ({tree.source})"
    for violation in violations:
        print(f"{violation.path}: {violation.message}")
    if violations:
        print(
            f"structure FAILED: {len(violations)} problem(s) in {checked}; "
            "each line above is '<path>: <what to fix>'",
            file=sys.stderr,
        )
        return 1
    print(f"structure OK: {checked} in {time.perf_counter() - start:.2f} s")
    return 0
