from __future__ import annotations

import dataclasses
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from shared_utils import GIT_REVISION_ENV, BuildInfo, build_info
from shared_utils import buildinfo as buildinfo_module

pytestmark = pytest.mark.usefixtures("fresh_build_info")

GIT = shutil.which("git")


def _git_repo(path: Path) -> str:
    """Create a repository with one commit in `path`; return its short revision."""
    assert GIT is not None, "the git fallback test needs git on PATH"

    def git(*args: str) -> str:
        return subprocess.run(
            [GIT, "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (path / "f.txt").write_text("x")
    git("add", "f.txt")
    git("commit", "-q", "-m", "init")
    return git("rev-parse", "--short", "HEAD")


def test_version_comes_from_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GIT_REVISION_ENV, "abc1234")
    info = build_info("shared-utils")
    assert info == BuildInfo(version=metadata.version("shared-utils"), git_revision="abc1234")


def test_env_override_wins_over_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _git_repo(tmp_path)
    monkeypatch.setenv(GIT_REVISION_ENV, "  deadbee \n")
    assert build_info("shared-utils", tmp_path).git_revision == "deadbee"


def test_env_override_is_read_on_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GIT_REVISION_ENV, "one")
    assert build_info("shared-utils", tmp_path).git_revision == "one"
    monkeypatch.setenv(GIT_REVISION_ENV, "two")
    assert build_info("shared-utils", tmp_path).git_revision == "two"


def test_git_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    revision = _git_repo(tmp_path)
    assert len(revision) >= 7
    assert build_info("shared-utils", tmp_path).git_revision == revision
    assert build_info("shared-utils", str(tmp_path)).git_revision == revision


def test_empty_env_override_falls_back_to_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GIT_REVISION_ENV, "")
    revision = _git_repo(tmp_path)
    assert build_info("shared-utils", tmp_path).git_revision == revision


def test_unknown_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert build_info("shared-utils", tmp_path).git_revision == "unknown"


def test_unknown_for_missing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    assert build_info("shared-utils", tmp_path / "nope").git_revision == "unknown"


def test_unknown_when_git_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    _git_repo(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert build_info("shared-utils", tmp_path).git_revision == "unknown"


def test_unknown_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    info = build_info("no-such-distribution-xyz")
    assert info == BuildInfo(version="unknown", git_revision="unknown")


def test_editable_install_source_is_found() -> None:
    # shared-utils is installed from its directory (editable), so direct_url.json points here.
    source = buildinfo_module._editable_source("shared-utils")
    assert source is not None
    assert (source / "shared_utils" / "buildinfo.py").is_file()


@pytest.mark.parametrize(
    "text", [None, "", "not json", "[1]", '{"url": "https://example.invalid/x"}', "{}"]
)
def test_direct_url_without_a_file_url_is_ignored(text: str | None) -> None:
    assert buildinfo_module._file_url_path(text) is None


def test_direct_url_file_path_is_decoded() -> None:
    url = '{"url": "file:///some%20where", "dir_info": {"editable": true}}'
    assert buildinfo_module._file_url_path(url) == Path("/some where")


def test_distribution_without_direct_url_has_no_source(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDist:
        def read_text(self, name: str) -> str | None:
            assert name == "direct_url.json"
            return None

    monkeypatch.setattr(metadata, "distributions", lambda name: [FakeDist(), FakeDist()])
    assert buildinfo_module._editable_source("anything") is None


def test_results_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_REVISION_ENV, raising=False)
    first = build_info("shared-utils", tmp_path / "missing")
    (tmp_path / "missing").mkdir()
    _git_repo(tmp_path / "missing")
    assert build_info("shared-utils", tmp_path / "missing") == first
    buildinfo_module.clear_build_info_cache()
    assert build_info("shared-utils", tmp_path / "missing").git_revision != "unknown"


def test_build_info_is_frozen() -> None:
    info = BuildInfo(version="1", git_revision="r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.version = "2"  # type: ignore[misc]  # assigning a frozen field on purpose
