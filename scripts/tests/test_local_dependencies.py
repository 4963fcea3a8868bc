"""Local libraries are installed editable from their paths, never from an index."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from scaffold import REPO, MiniRepo, package_venv_python, run, run_ok


def _distribution(python: Path, name: str) -> tuple[str, dict[str, object]]:
    """Version and direct_url.json of a distribution installed in `python`'s venv."""
    site = next(python.parent.parent.glob("lib/python3.*/site-packages"))
    [found] = metadata.distributions(name=name, path=[str(site)])
    return found.version, json.loads(found.read_text("direct_url.json") or "null")


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
    output = run_ok(["make", "-n", "test-coverage"], cwd=REPO / "apps" / "sts-service")

    assert "--cov=sts_service " in output
    assert "--cov-fail-under=80" in output


def _write_lock(mini: MiniRepo, folder: str, wheels: Path) -> dict[str, str]:
    """Lock a mini package to what its venv holds now (pins + hashes), as `make lock` would."""
    from monorepo.locks import DIGEST_PREFIX, lock_path, minor_of, package_spec
    from monorepo.packages import discover, find_package
    from monorepo.venvs import interpreter_identity

    python = mini.root / folder / ".venv" / "bin" / "python"
    frozen = run([str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"], mini.root)
    pins = dict(line.split("==") for line in frozen.output.split() if "==" in line)
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels)]
    run([*download, *frozen.output.split()], REPO)
    packages = discover(mini.root)
    spec = package_spec(find_package(str(mini.root / folder), packages), packages)
    lines = [DIGEST_PREFIX + spec.digest()]
    for name, version in pins.items():
        prefix = f"{name.lower().replace('-', '_')}-{version}"
        files = [w for w in wheels.iterdir() if w.name.lower().startswith(prefix)]
        hashes = [f"--hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}" for w in files]
        lines.append(" ".join([f"{name}=={version}", *hashes]))
    minor = minor_of(interpreter_identity(str(python)))
    lock = mini.root / lock_path(spec.lock_name, minor).relative_to(REPO)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("\n".join(lines) + "\n")
    return pins


@pytest.mark.slow  # installs in a mini repo, twice
def test_an_index_offering_higher_versions_wins_neither_local_nor_locked_packages(
    mini_repo: MiniRepo, tmp_path: Path
) -> None:
    def install(index: Path, *folders: str) -> str:
        for folder in folders:  # force a reinstall
            (mini_repo.root / folder / ".venv" / ".installed").unlink()
        return mini_repo.make_ok("install", env={"PIP_FIND_LINKS": str(index)})

    alpha = mini_repo.root / "libs" / "alpha" / ".venv" / "bin" / "python"
    index = tmp_path / "index"  # alpha names only beta, which an index offers much higher
    index.mkdir()
    _fake_wheel(index, "beta", "99.0.0")
    install(index, "libs/alpha")
    version, direct_url = _distribution(alpha, "beta")
    assert version == "0.1.0", "the index's beta 99.0.0 replaced the local library"
    assert direct_url == {
        "dir_info": {"editable": True},
        "url": (mini_repo.root / "libs" / "beta").as_uri(),
    }

    # Locked: the install makes no resolver decision, even offered newer everything.
    pins = {f: _write_lock(mini_repo, f, tmp_path / "wheels") for f in ("libs/alpha", "libs/beta")}
    newer = tmp_path / "newer"
    newer.mkdir()
    for name in {name for locked in pins.values() for name in locked}:
        _fake_wheel(newer, name, "999.0")
    assert "locked by locks/py3." in install(newer, *pins)
    for folder, locked in pins.items():
        python = mini_repo.root / folder / ".venv" / "bin" / "python"
        for name, version in locked.items():
            assert _distribution(python, name)[0] == version, f"{folder}: {name} moved"
