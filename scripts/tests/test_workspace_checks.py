"""One configuration, dependencies declared once, boundaries kept: `workspace.py check`."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaffold import PACKAGES, REPO, commit_all, restore, run

AUDIO, UTILS = "libs/shared-audio/pyproject.toml", "libs/shared-utils/pyproject.toml"
STS, WORKER = "apps/sts-service/pyproject.toml", "apps/stream-worker/pyproject.toml"


def workspace(root: Path, command: str) -> tuple[int, str]:
    result = run([sys.executable, str(root / "scripts" / "workspace.py"), command], cwd=root)
    return result.returncode, result.output


@pytest.fixture(scope="module")
def pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace's manifests, locks and packages (no venvs), committed; it passes both checks
    (the repo itself passes them in `make -C scripts lint`)."""
    root = tmp_path_factory.mktemp("workspace") / "repo"
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".make", "htmlcov")
    for folder in ["scripts", "locks", *PACKAGES]:
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    commit_all(root)
    code, output = workspace(root, "check")
    assert code == 0 and f"workspace OK: {len(PACKAGES)} packages" in output, output
    code, output = workspace(root, "lint-imports")
    assert code == 0, output
    return root


@pytest.fixture
def repo_copy(pristine_copy: Path) -> Iterator[Path]:
    """The pristine copy for one test to change; put back afterwards."""
    yield pristine_copy
    restore(pristine_copy)


def _tool_table(table: str) -> tuple[str, str, str, list[str]]:
    message = f"{AUDIO}: [tool.{table.split('.')[0]}] would replace the root"
    return AUDIO, "", f"\n[tool.{table}]\nx = 1\n", [message]


def _config_file(name: str) -> tuple[str, str, str, list[str]]:
    path = f"apps/sts-service/{name}"
    return path, "", "[pytest]\n", [f"{path}: tool configuration belongs in the root"]


# (file, text replaced in it or "" to append, new text, expected in the refusal)
BROKEN: dict[str, tuple[str, str, str, list[str]]] = {
    **{
        f"tool-table-{table}": _tool_table(table)
        for table in ("mypy", "ruff", "pytest.ini_options", "coverage.run")
    },
    **{
        f"config-file-{name}": _config_file(name)
        for name in ("pytest.ini", "setup.cfg", "mypy.ini", "ruff.toml")
    },
    "drifted-dev-extra": (
        WORKER,
        '"pytest-cov>=5.0",',
        '"pytest-cov>=4.0",',
        [f"{WORKER}: the dev extra must start with the root"],
    ),
    "library-depends-on-a-service": (
        UTILS,
        "dependencies = [",
        'dependencies = [\n  "sts-service",',
        [f"{UTILS} depends on apps/sts-service"],
    ),
    "local-dependency-by-url": (
        STS,
        '"shared-audio>=0.1.0", # local',
        '"shared-audio @ file:///elsewhere", # local',
        ["must be declared by name only"],
    ),
    "dependency-cycle": (
        AUDIO,
        "dependencies = [",
        'dependencies = [\n  "shared-utils",',
        ["local dependency cycle: shared-audio -> shared-utils -> shared-audio"],
    ),
    "unlisted-subpackage": (
        "libs/shared-audio/shared_audio/extra/__init__.py",
        "",
        "",
        ["packages is missing ['shared_audio.extra']"],
    ),
    "package-pydantic-unlike-the-tools-mypy-plugin": (
        "locks/py3.11/stream-worker.txt",
        "\npydantic==",
        "\npydantic==2.0.0.dev0 \\\n    --hash=sha256:0\nunused==",
        ["locks/py3.11/stream-worker.txt: pydantic 2.0.0.dev0, but the tools env"],
    ),
    "dependency-change-without-make-lock": (
        AUDIO,
        "dependencies = [",
        'dependencies = ["rich",',
        [
            "libs/shared-audio's pyproject dependencies changed since this lock was made",
            "run `make lock`",
            "apps/sts-service's pyproject",  # a dependent's lock is stale too
        ],
    ),
}


@pytest.mark.parametrize(("path", "old", "new", "messages"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_rule_fails_the_check_and_names_it(
    repo_copy: Path, path: str, old: str, new: str, messages: list[str]
) -> None:
    target = repo_copy / path
    target.parent.mkdir(parents=True, exist_ok=True)
    text = target.read_text() if target.exists() else ""
    assert old in text, f"{path} no longer holds {old!r}: update this test"
    target.write_text(text.replace(old, new, 1) if old else text + new)

    code, output = workspace(repo_copy, "check")

    assert code == 1
    for message in messages:
        assert message in output, output


def test_a_forbidden_import_fails_lint_and_names_the_contract(repo_copy: Path) -> None:
    assert "workspace.py lint-imports" in run(["make", "-n", "lint"], REPO / "scripts").output
    module = repo_copy / "libs/shared-audio/shared_audio/levels.py"
    module.write_text("import sts_service\n" + module.read_text())

    code, output = workspace(repo_copy, "lint-imports")

    assert code == 1
    assert "Libraries never import services BROKEN" in output
    assert "shared_audio.levels -> sts_service" in output


def test_local_deps_are_listed_in_install_order() -> None:
    result = run(
        [sys.executable, str(REPO / "scripts/workspace.py"), "local-deps", "apps/sts-service"],
        cwd=REPO,
    )
    assert result.returncode == 0, result.output
    assert result.output.split() == ["libs/shared-audio", "libs/shared-utils"]
