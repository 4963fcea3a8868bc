"""Which code is running: package version and git revision, for health endpoints."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["GIT_REVISION_ENV", "UNKNOWN", "BuildInfo", "build_info", "clear_build_info_cache"]

#: Environment variable that overrides the git revision (set by image builds, where the
#: source has no .git directory).
GIT_REVISION_ENV = "GIT_REVISION"
#: Value reported when a version or revision cannot be determined.
UNKNOWN = "unknown"

_GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BuildInfo:
    """Version and revision of a running distribution.

    Attributes:
        version: The installed distribution's version, or ``"unknown"``.
        git_revision: Short git commit hash, or ``"unknown"``.
    """

    version: str
    git_revision: str


def build_info(distribution: str, source_path: str | os.PathLike[str] | None = None) -> BuildInfo:
    """Version and git revision of `distribution`.

    The version comes from the installed package metadata. The revision is, in order: the
    ``GIT_REVISION`` environment variable when set and not empty; ``git rev-parse --short HEAD``
    run in `source_path` (default: the source directory of an editable install of
    `distribution`); else ``"unknown"``. Lookups other than the environment are cached per
    (distribution, source_path); see `clear_build_info_cache`.

    Example:
        >>> info = build_info("shared-utils")
        >>> info.version == metadata.version("shared-utils")
        True
    """
    override = os.environ.get(GIT_REVISION_ENV, "").strip()
    source = None if source_path is None else str(Path(source_path).resolve())
    version, revision = _lookup(distribution, source)
    return BuildInfo(version=version, git_revision=override or revision)


def clear_build_info_cache() -> None:
    """Forget cached versions and revisions (for tests, or after an upgrade in place)."""
    _lookup.cache_clear()


@functools.lru_cache(maxsize=32)
def _lookup(distribution: str, source: str | None) -> tuple[str, str]:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = UNKNOWN
    directory = Path(source) if source is not None else _editable_source(distribution)
    revision = _git_revision(directory) if directory is not None else UNKNOWN
    return version, revision


def _editable_source(distribution: str) -> Path | None:
    """The project directory of an editable (or local path) install, from direct_url.json.

    Every metadata directory of the distribution on sys.path is tried: an in-tree
    ``*.egg-info`` left by a build has no direct_url.json and may come first.
    """
    for dist in metadata.distributions(name=distribution):
        source = _file_url_path(dist.read_text("direct_url.json"))
        if source is not None:
            return source
    return None


def _file_url_path(direct_url: str | None) -> Path | None:
    if not direct_url:
        return None
    try:
        url = json.loads(direct_url).get("url", "")
    except (ValueError, AttributeError):
        return None
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def _git_revision(directory: Path) -> str:
    if not directory.is_dir():
        return UNKNOWN
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    revision = completed.stdout.strip()
    return revision if completed.returncode == 0 and revision else UNKNOWN
