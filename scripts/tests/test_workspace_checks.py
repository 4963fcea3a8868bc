"""One configuration, dependencies declared once, boundaries kept (`workspace.py check`), and
`SINCE=<git ref>` selecting what a change reaches (`workspace.py affected`)."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from monorepo.locks import package_spec
from monorepo.packages import discover
from new_package import Spec, generate
from scaffold import PACKAGES, REPO, commit_all, git, restore, run, run_ok

AUDIO, UTILS = "libs/shared-audio/pyproject.toml", "libs/shared-utils/pyproject.toml"
STS, WORKER = "apps/sts-service/pyproject.toml", "apps/stream-worker/pyproject.toml"


def workspace(root: Path, *args: str) -> tuple[int, str]:
    result = run([sys.executable, str(root / "scripts" / "workspace.py"), *args], cwd=root)
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


# (file, text replaced in it or "" to append, new text, expected in the refusal)
BROKEN: dict[str, tuple[str, str, str, list[str]]] = {
    **{
        f"tool-table-{table}": _tool_table(table)
        for table in ("mypy", "ruff", "pytest.ini_options", "coverage.run")
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


def test_a_new_package_with_an_extra_passes_until_make_lock(repo_copy: Path) -> None:
    generate(Spec("service", "audio-mixer", "The mixer.", 8123, repo_copy))
    pyproject = repo_copy / "apps/audio-mixer/pyproject.toml"
    extras = "[project.optional-dependencies]\n"
    pyproject.write_text(pyproject.read_text().replace(extras, extras + 'engines = ["numpy"]\n'))

    code, output = workspace(repo_copy, "check")

    # docs/.venv holds every package: its lock is stale only by the new one, a note too.
    assert code == 0, output
    assert "audio-mixer.engines.txt: not locked yet" in output
    assert "docs's pyproject dependencies changed" in output


def test_make_lock_with_every_lock_current_changes_and_builds_nothing(repo_copy: Path) -> None:
    code, output = workspace(repo_copy, "lock")

    assert code == 0 and "every lock is current" in output, output
    assert not (repo_copy / ".make").exists()  # no pip-tools env made for nothing to compile
    assert git(repo_copy, "status", "--porcelain").output == ""


def test_a_failed_pip_compile_is_one_error_line(repo_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "python3.11").symlink_to(sys.executable)  # the one Python found, no pyenv
    fake = repo_copy / ".make" / "lock-env-py3.11" / "bin" / "pip-compile"  # lock_env's place
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'No matching distribution found for rich' >&2\nexit 1\n")
    fake.chmod(0o755)
    audio = repo_copy / AUDIO  # a new dependency: its lock and its dependents' are stale
    audio.write_text(audio.read_text().replace("dependencies = [", 'dependencies = ["rich",', 1))

    command = [sys.executable, str(repo_copy / "scripts" / "workspace.py"), "lock"]
    result = run(command, repo_copy, env={"PATH": str(tmp_path)})

    assert result.returncode == 1, result.output
    assert "No matching distribution found for rich" in result.output
    assert re.search(r"^error: pip-compile failed for \S+ on Python 3\.11$", result.output, re.M)
    assert "Traceback" not in result.output


def test_a_forbidden_import_fails_lint_and_names_the_contract(repo_copy: Path) -> None:
    assert "workspace.py lint-imports" in run(["make", "-n", "lint"], REPO / "scripts").output
    module = repo_copy / "libs/shared-audio/shared_audio/levels.py"
    module.write_text("import sts_service\n" + module.read_text())

    code, output = workspace(repo_copy, "lint-imports")

    assert code == 1
    assert (
        "libs/shared-audio imports no service and only the libraries it declares BROKEN" in output
    )
    assert "shared_audio.levels -> sts_service" in output


def test_a_venv_installs_its_local_libraries_first_in_dependency_order() -> None:
    packages = discover(REPO)
    spec = package_spec(packages["sts-service"], packages)
    folders = [path.relative_to(REPO).as_posix() for path, _ in spec.editables]
    assert folders == ["libs/shared-audio", "libs/shared-utils", "apps/sts-service"]


# folder: local dependencies
HISTORY = {"libs/base": [], "libs/mid": ["base"], "apps/front": ["mid"], "apps/solo": []}


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A repo with the installer and four packages, committed once (tag `start`)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts/monorepo", root / "scripts/monorepo")
    shutil.copy2(REPO / "scripts/workspace.py", root / "scripts/workspace.py")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    for folder, deps in HISTORY.items():
        (root / folder / "src").mkdir(parents=True)
        (root / folder / "src" / "code.py").write_text("x = 1\n")
        name = folder.split("/")[1]
        (root / folder / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = {deps}\n'
        )
    commit_all(root, tag="start")
    return root


@pytest.mark.parametrize(
    ("changed", "members", "reasons"),
    [
        (
            "libs/base/src/code.py",  # a library: it and its dependents
            ["apps/front", "libs/base", "libs/mid"],
            ["apps/front (depends on libs/base)", "libs/base (changed)"],
        ),
        ("apps/solo/src/new.py", ["apps/solo"], []),  # an app alone; untracked files count too
        (
            "pyproject.toml",  # a shared build file: everything
            ["apps/front", "apps/solo", "libs/base", "libs/mid", "scripts"],
            ["shared build file changed: pyproject.toml"],
        ),
    ],
)
def test_a_change_selects_what_it_reaches(
    history: Path, changed: str, members: list[str], reasons: list[str]
) -> None:
    with (history / changed).open("a") as file:
        file.write("y = 2\n" if changed.endswith(".py") else "\n")

    code, output = workspace(history, "affected", "start")

    assert code == 0, output
    assert output.splitlines()[-1].split() == members
    for reason in reasons:
        assert reason in output


def test_the_root_loops_visit_only_the_selection() -> None:
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: all changed
    # The selection is asked for while the recipe runs (the tools env exists only then), so
    # `make -n` shows the question and `make affected` shows the answer the loop gets.
    dry = run_ok(["make", "-n", "test", f"SINCE={empty_tree}"], REPO)
    assert f"scripts/workspace.py affected {empty_tree}" in dry

    output = run_ok(["make", "affected", f"SINCE={empty_tree}"], REPO)
    # Every package is chosen (all of them changed); a copy made by the generator test has more.
    packages = sorted(str(p.parent.relative_to(REPO)) for p in REPO.glob("*/*/pyproject.toml"))
    packages = [p for p in packages if p.startswith(("apps/", "libs/"))]
    assert output.splitlines()[-1].split() == [*packages, "scripts"]
    assert "scripts (shared build file changed: " in output


@pytest.mark.parametrize("target", ["affected", "lint"])
def test_a_selection_that_cannot_be_answered_fails_the_command(target: str) -> None:
    result = run(["make", target, "SINCE=no-such-ref"], REPO)
    assert result.returncode != 0, result.output
    assert "no-such-ref" in result.output
    assert "OK in all 0" not in result.output
