"""One configuration, dependencies declared once, boundaries kept: `workspace.py check`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from scaffold import REPO, run

PACKAGES = ["apps/sts-service", "apps/stream-worker", "libs/shared-audio", "libs/shared-utils"]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The workspace's manifests, Makefiles and package folders, without venvs."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".make", "htmlcov")
    shutil.copytree(REPO / "scripts", root / "scripts", ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    return root


def check(root: Path) -> tuple[int, str]:
    result = run([sys.executable, str(root / "scripts" / "workspace.py"), "check"], cwd=root)
    return result.returncode, result.output


def test_the_repo_passes() -> None:
    code, output = check(REPO)
    assert code == 0, output
    count = len(list(REPO.glob("apps/*/pyproject.toml")) + list(REPO.glob("libs/*/pyproject.toml")))
    assert f"workspace OK: {count} packages" in output


@pytest.mark.parametrize("table", ["mypy", "ruff", "pytest.ini_options", "coverage.run"])
def test_package_tool_table_is_refused(repo_copy: Path, table: str) -> None:
    pyproject = repo_copy / "libs/shared-audio/pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f"\n[tool.{table}]\nx = 1\n")

    code, output = check(repo_copy)

    assert code == 1
    top = table.split(".")[0]
    assert f"libs/shared-audio/pyproject.toml: [tool.{top}] would replace the root" in output


@pytest.mark.parametrize("name", ["pytest.ini", "setup.cfg", "mypy.ini", "ruff.toml"])
def test_package_config_file_is_refused(repo_copy: Path, name: str) -> None:
    (repo_copy / "apps/sts-service" / name).write_text("[pytest]\n")

    code, output = check(repo_copy)

    assert code == 1
    assert f"apps/sts-service/{name}: tool configuration belongs in the root" in output


def test_drifted_dev_extra_is_refused(repo_copy: Path) -> None:
    pyproject = repo_copy / "apps/stream-worker/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"mypy>=1.13",', '"mypy>=1.0",'))

    code, output = check(repo_copy)

    assert code == 1
    assert "apps/stream-worker/pyproject.toml: the dev extra must start with the root" in output


def test_library_depending_on_a_service_is_refused(repo_copy: Path) -> None:
    pyproject = repo_copy / "libs/shared-utils/pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = [", 'dependencies = [\n  "sts-service",')
    )

    code, output = check(repo_copy)

    assert code == 1
    assert "libs/shared-utils/pyproject.toml depends on apps/sts-service" in output


def test_local_dependency_by_url_is_refused(repo_copy: Path) -> None:
    pyproject = repo_copy / "apps/sts-service/pyproject.toml"
    text = pyproject.read_text().replace(
        '"shared-audio>=0.1.0", # local', '"shared-audio @ file:///elsewhere", # local'
    )
    pyproject.write_text(text)

    code, output = check(repo_copy)

    assert code == 1
    assert "must be declared by name only" in output


def test_dependency_cycle_is_refused(repo_copy: Path) -> None:
    pyproject = repo_copy / "libs/shared-audio/pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = [", 'dependencies = [\n  "shared-utils",')
    )

    code, output = check(repo_copy)

    assert code == 1
    assert "local dependency cycle: shared-audio -> shared-utils -> shared-audio" in output


def test_unlisted_subpackage_is_refused(repo_copy: Path) -> None:
    sub = repo_copy / "libs/shared-audio/shared_audio/extra"
    sub.mkdir()
    (sub / "__init__.py").write_text("")

    code, output = check(repo_copy)

    assert code == 1
    assert "packages is missing ['shared_audio.extra']" in output


def test_a_dependency_change_without_make_lock_fails_and_says_so(repo_copy: Path) -> None:
    shutil.copytree(REPO / "locks", repo_copy / "locks")
    assert check(repo_copy)[0] == 0
    pyproject = repo_copy / "libs/shared-audio/pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("dependencies = [", 'dependencies = ["rich",', 1))

    code, output = check(repo_copy)

    assert code == 1
    assert "libs/shared-audio's pyproject dependencies changed since this lock was made" in output
    assert "run `make lock`" in output
    assert "apps/sts-service's pyproject" in output  # a dependent's lock is stale too


def test_a_forbidden_import_fails_lint_and_names_the_contract(repo_copy: Path) -> None:
    assert "workspace.py lint-imports" in run(["make", "-n", "lint"], REPO / "scripts").output
    lint = [sys.executable, str(repo_copy / "scripts/workspace.py"), "lint-imports"]
    assert run(lint, repo_copy).returncode == 0
    module = repo_copy / "libs/shared-audio/shared_audio/levels.py"
    module.write_text("import sts_service\n" + module.read_text())

    result = run(lint, repo_copy)

    assert result.returncode == 1
    assert "Libraries never import services BROKEN" in result.output
    assert "shared_audio.levels -> sts_service" in result.output


def test_local_deps_are_listed_in_install_order() -> None:
    result = run(
        [sys.executable, str(REPO / "scripts/workspace.py"), "local-deps", "apps/sts-service"],
        cwd=REPO,
    )
    assert result.returncode == 0, result.output
    assert result.output.split() == ["libs/shared-audio", "libs/shared-utils"]
