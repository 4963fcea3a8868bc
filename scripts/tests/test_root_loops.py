"""The root Makefile's loops tell the truth (every member runs, every failure is named, the
exit status is non-zero) and installs are incremental."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaffold import MiniRepo, commit_all, run_ok

# Each test runs make in the installed mini repo: part of `make test-all` and CI.
pytestmark = pytest.mark.slow

FAILING_TEST = "def test_fails_on_purpose():\n    assert 1 == 2\n"


@pytest.fixture
def broken_tests(shared_mini_repo: MiniRepo) -> Iterator[MiniRepo]:
    yield shared_mini_repo
    for path in shared_mini_repo.root.glob("libs/*/tests/unit/test_broken.py"):
        path.unlink()


def test_failures_are_named_later_packages_still_run_and_output_stays_in_blocks(
    broken_tests: MiniRepo,
) -> None:
    # libs/alpha sorts first; the loop must not stop there, nor end with beta's success.
    (broken_tests.root / "libs/alpha/tests/unit/test_broken.py").write_text(FAILING_TEST)

    result = broken_tests.make("test")

    assert result.returncode != 0, result.output
    assert "==> test: FAILED in libs/alpha" in result.output
    assert "test: FAILED in: libs/alpha" in result.output
    assert "1 passed" in result.output.split("==> test: libs/beta", 1)[1]  # beta ran after alpha

    (broken_tests.root / "libs/beta/tests/unit/test_broken.py").write_text(FAILING_TEST)
    result = broken_tests.make("-j3", "test")  # -j must not interleave the members' output

    assert result.returncode != 0
    assert "test: FAILED in: libs/alpha libs/beta" in result.output
    blocks = re.split(r"^==> test: (?!FAILED)", result.output, flags=re.MULTILINE)[1:]
    assert [block.split()[0] for block in blocks] == ["libs/alpha", "libs/beta", "scripts"]
    for block in blocks:
        assert block.count("test session starts") == 1, block


def test_green_run_passes_and_counts_packages(shared_mini_repo: MiniRepo) -> None:
    assert "test: OK in all 3: libs/alpha libs/beta scripts" in shared_mini_repo.make_ok("test")


def test_noop_install_does_no_pip_work(shared_mini_repo: MiniRepo) -> None:
    # Untouched install stamps: the PYTHON=<a venv's python> case of the test below.
    output = shared_mini_repo.make_ok("install")

    assert "pip" not in output, output
    assert "workspace.py" not in output

    # Nor any interpreter (what keeps it near 50 ms): a dry run lists every command it would
    # start. Without PYTHON (run() drops an outer make's) the recorded interpreter is trusted;
    # PYTHON= re-checks it.
    dry = run_ok(["make", "-n", "install"], cwd=shared_mini_repo.root)
    assert not re.search(r"check_python|workspace\.py|bin/python", dry), dry
    assert "check_python.py" in shared_mini_repo.make_ok("-n", "install")


def test_a_changed_pyproject_reinstalls_the_package_and_its_dependents_only(
    mini_repo: MiniRepo,
) -> None:
    alpha = mini_repo.root / "libs" / "alpha" / "pyproject.toml"
    alpha.write_text(alpha.read_text() + "\n")

    output = mini_repo.make_ok("install")

    assert "installed libs/alpha" in output
    assert "installed libs/beta" not in output  # a dependent leaves its library alone

    beta = mini_repo.root / "libs" / "beta" / "pyproject.toml"
    beta.write_text(beta.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))

    output = mini_repo.make_ok("install")

    assert "installed libs/beta" in output
    assert "installed libs/alpha" in output  # alpha depends on beta


@pytest.mark.parametrize(
    ("python", "refusal"),
    [
        ("python3.9", ["this repo needs Python >= 3.10", "make install PYTHON="]),
        ("python3.999", ["PYTHON=python3.999 was not found"]),  # not on PATH
    ],
)
def test_a_too_old_or_missing_interpreter_is_named(
    shared_mini_repo: MiniRepo, tmp_path: Path, python: str, refusal: list[str]
) -> None:
    if python == "python3.9":  # a 3.9 as far as the check can tell
        python = str(tmp_path / python)
        Path(python).write_text(
            "#!/bin/sh\nexec python3 -c 'import sys; sys.version_info = (3, 9); "
            'exec(open(sys.argv[1]).read())\' "$@"\n'
        )
        Path(python).chmod(0o755)

    result = shared_mini_repo.make(f"PYTHON={python}", "install")

    assert result.returncode != 0
    for message in refusal:
        assert message in result.output


def test_a_package_runs_alone_with_the_interpreter_chosen_at_the_root(
    shared_mini_repo: MiniRepo,
) -> None:
    assert "1 passed" in shared_mini_repo.make_ok("-C", "libs/beta", "test")
    # The venvs were built with PYTHON=<this interpreter>; a later command without PYTHON
    # must reuse it (recorded in .make/python-id), not rebuild with the default python3.
    assert "installed" not in run_ok(["make", "-C", "libs/beta", "install"], shared_mini_repo.root)


def _fresh_copy(template: Path, target: Path, *, tools_env: bool = True) -> MiniRepo:
    """The installed mini repo as a fresh clone: committed, no recorded interpreter (nor tools
    env, without `tools_env`)."""
    shutil.copytree(template, target, symlinks=True)
    shutil.rmtree(target / ".make")
    if not tools_env:
        shutil.rmtree(target / ".venv")
    commit_all(target)
    return MiniRepo(target)


def _python_on_path(folder: Path, name: str, *, shim: bool) -> dict[str, str]:
    """An environment whose PATH finds this interpreter as `name`: a pyenv-like shim, or a
    symlink (as /usr/bin/python3 is)."""
    folder.mkdir()
    real = os.path.realpath(sys.executable)
    if shim:
        (folder / name).write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
        (folder / name).chmod(0o755)
    else:
        (folder / name).symlink_to(real)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


MINOR = f"python{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.mark.parametrize(
    ("named_as", "make_args", "shim"),
    [
        ("nothing; python3 is a pyenv-like shim", [], True),
        ("nothing; python3 is a symlink, as /usr/bin/python3", [], False),
        (f"PYTHON={MINOR}", [f"PYTHON={MINOR}"], False),
        ("PYTHON=<absolute path>", [f"PYTHON={os.path.realpath(sys.executable)}"], False),
        ("PYTHON=<a venv's python>", [f"PYTHON={sys.executable}"], False),
    ],
)
def test_every_way_of_naming_the_interpreter_is_recorded_and_then_incremental(
    mini_repo_template: Path, tmp_path: Path, named_as: str, make_args: list[str], shim: bool
) -> None:
    repo = _fresh_copy(mini_repo_template, tmp_path / "repo")
    name = MINOR if make_args == [f"PYTHON={MINOR}"] else "python3"
    env = _python_on_path(tmp_path / "bin", name, shim=shim)

    # make exactly as typed: no PYTHON unless in `make_args`.
    first = run_ok(["make", "install", *make_args], repo.root, env)
    assert "check_python" not in first  # the check is silent when it passes
    recorded = (repo.root / ".make" / "python-id").read_text().split()[0]
    assert recorded == os.path.realpath(sys.executable), named_as

    stamps = sorted(repo.root.glob("**/.venv/.installed"))
    before = [stamp.stat().st_mtime_ns for stamp in stamps]
    # Then, as typed later by the same user: nothing is rebuilt, by any of these commands.
    for command in (["install"], ["test"], ["affected", "SINCE=HEAD"], ["install"]):
        output = run_ok(["make", *command], repo.root, env)
        assert "installed" not in output, f"{named_as}: make {' '.join(command)}:\n{output}"
    assert [stamp.stat().st_mtime_ns for stamp in stamps] == before, named_as


def test_affected_is_right_on_its_first_call_in_a_fresh_clone(
    mini_repo_template: Path, tmp_path: Path
) -> None:
    repo = _fresh_copy(mini_repo_template, tmp_path / "repo", tools_env=False)
    (repo.root / "libs" / "beta" / "beta" / "extra.py").write_text("X = 1\n")

    output = run_ok(["make", "affected", "SINCE=HEAD"], repo.root)

    assert output.splitlines()[-1] == "libs/alpha libs/beta", output
    assert "installed tools" in output  # the tools env came first, then the answer
