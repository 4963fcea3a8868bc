"""Every workaround dirschema 0.1.0 needs, in one place.

dirschema 0.1.0 (May 2023) is the only release, and it is unmaintained:
* it declares Requires-Python <3.11 but runs on 3.10-3.13, needs pydantic<2, typer<0.10 and
  click<8.2 (its CLI crashes on 8.2), so it lives in the root tools env only, installed with
  --no-deps --ignore-requires-python (monorepo/locks.py);
* importing it raises NameError unless h5py is installed (a type hint): a placeholder module
  stands in during the import;
* it walks a directory with ``rglob("*")``: we hand it ``TrackedTree``, an adapter of its
  ``IDirectory`` interface that lists only what git would track;
* ``DSValidator.validate`` returns the errors (it does not raise) and needs a Path, not a str.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import json
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol, cast

from monorepo.tracked import git_files, walk_files

INSTALL_HINT = "run `make install` at the repo root, then `make validate-structure`"
"""What to do when dirschema cannot run: build the root tools environment and use it."""


class DirschemaUnavailableError(RuntimeError):
    """dirschema cannot be imported or run by this interpreter; the message says what to do."""


class ValidationError(Protocol):
    """The part of ``dirschema.validate.DSValidationError`` this module reads."""

    path: str
    err: str | Mapping[str, Sequence[str]]


Errors = Mapping[str, Mapping[tuple[str | int, ...], ValidationError]]


class Validator(Protocol):
    """The part of ``dirschema.validate.DSValidator`` this module uses."""

    def validate(self, root_path: object) -> Errors:
        """Return the errors found under ``root_path`` (empty when valid)."""


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


def load_validator(schema: Path) -> Validator:
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
        return cast(Validator, validate.DSValidator(schema.resolve()))
    except Exception as exc:  # pydantic/jsonref/ruamel errors: report them, naming the file
        raise ValueError(f"{schema}: not a valid dirschema schema: {exc}") from exc
