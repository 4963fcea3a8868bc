"""Local libraries are installed editable from their paths, never from an index
(docs/decisions/0001-local-packages-by-path.md)."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

from scaffold import REPO, MiniRepo, package_venv_python, run


def _distribution(python: Path, name: str) -> tuple[str, dict[str, object]]:
    """Version and direct_url.json of an installed distribution."""
    code = (
        "import importlib.metadata as m, json, sys;"
        f"d = m.distribution({name!r});"
        "print(json.dumps([d.version, json.loads(d.read_text('direct_url.json') or 'null')]))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    version, direct_url = json.loads(out.stdout)
    return version, direct_url


def _fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel of `name` that an index could offer: same name, much higher version."""
    dist = f"{name.replace('-', '_')}-{version}"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}/__init__.py", "IMPOSTOR = True\n")
        archive.writestr(
            f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        archive.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{dist}.dist-info/RECORD", "")
    return wheel


def test_every_service_has_its_libraries_editable_from_their_paths() -> None:
    for service in ("apps/sts-service", "apps/stream-worker"):
        python = package_venv_python(service)
        for library in ("shared-audio", "shared-utils"):
            _, direct_url = _distribution(python, library)
            assert direct_url == {
                "dir_info": {"editable": True},
                "url": (REPO / "libs" / library).as_uri(),
            }, f"{service}: {library} is not the editable local copy"


def test_transitive_local_library_is_wired(mini_repo: MiniRepo) -> None:
    # alpha names only beta; beta must come from libs/beta, editable.
    python = mini_repo.root / "libs" / "alpha" / ".venv" / "bin" / "python"
    version, direct_url = _distribution(python, "beta")
    assert version == "0.1.0"
    assert direct_url["dir_info"] == {"editable": True}


def test_index_offering_a_higher_version_does_not_win(mini_repo: MiniRepo, tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _fake_wheel(index, "beta", "99.0.0")
    (mini_repo.root / "libs" / "alpha" / ".venv" / ".installed").unlink()  # force a reinstall

    result = mini_repo.make("install", env={"PIP_FIND_LINKS": str(index)})

    assert result.returncode == 0, result.output
    python = mini_repo.root / "libs" / "alpha" / ".venv" / "bin" / "python"
    version, direct_url = _distribution(python, "beta")
    assert version == "0.1.0", "the index's beta 99.0.0 replaced the local library"
    assert direct_url["url"] == (mini_repo.root / "libs" / "beta").as_uri()


def test_mypy_sees_real_types_across_packages(tmp_path: Path) -> None:
    # A service misusing a library function must fail `make type-check`.
    package_venv_python("apps/sts-service")
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "from shared_audio import AudioFormat\n\n"
        "FRAME_BYTES: str = AudioFormat(16000, 1).frame_bytes\n"
    )

    result = run(["make", "type-check", f"SOURCES={misuse}"], cwd=REPO / "apps" / "sts-service")

    assert result.returncode != 0, result.output
    assert 'Incompatible types in assignment (expression has type "int"' in result.output


def test_coverage_is_measured_on_the_import_name() -> None:
    # --cov=sts-service (the folder name) measures nothing; the fragment must use sts_service.
    result = run(["make", "-n", "test-coverage"], cwd=REPO / "apps" / "sts-service")

    assert result.returncode == 0, result.output
    assert "--cov=sts_service " in result.output
    assert "--cov-fail-under=80" in result.output
