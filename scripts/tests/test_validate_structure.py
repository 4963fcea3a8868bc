"""`make validate-structure` (scripts/validate-structure.py + the dirschema schema), on a git
copy of the repository's files: each mutation must add exactly its expected lines."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import Mock

import pytest
import structure_validation as sv
from monorepo import tracked
from new_package import Spec, generate
from scaffold import REPO, commit_all, copy_tracked_tree, git, restore

CLI = REPO / "scripts" / "validate-structure.py"
SCHEMA = REPO / ".schemas" / "monorepo-structure.yaml"

Line = tuple[str, str]

# dirschema's own messages, which the schema's descriptions must always replace.
GENERIC = "All of|At least|Exactly|Failed to|Entity |Negated|Reached unsatisfiable|"
GENERIC_PREFIXES = tuple((GENERIC + "Validation failed").split("|"))

# The schema's descriptions, as printed (abbreviated to a unique prefix).
MISSING_UNIT = "missing: every package needs unit tests in tests/unit/"
MISSING_PYPROJECT = "missing: every package needs pyproject.toml"
MISSING_INIT = "missing: the import package (the package folder's name with '-' replaced by '_')"
MISSING_TYPED = "missing: the import package needs an empty py.typed marker"
KEBAB = "apps/ and libs/ hold only package folders named in kebab-case"
ONE_PACKAGE = "is a Python package, but a package folder holds exactly one"
ENV_FILE = "never track a .env file"
SPEC_NAME = "rename it: files in specs/ are named NNN-kebab-case.md"
PACKAGE_CONFIG = "remove it: tool configuration lives only in the root pyproject.toml"


@pytest.fixture(scope="session")
def structure_validator() -> sv.Validator:
    return sv.load_validator(SCHEMA)


@pytest.fixture(scope="session")
def structure_pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's tracked files, committed to git."""
    destination = tmp_path_factory.mktemp("structure") / "pristine"
    copy_tracked_tree(destination)
    commit_all(destination)
    return destination


@pytest.fixture
def structure_copy(structure_pristine_copy: Path) -> Iterator[Path]:
    yield structure_pristine_copy
    restore(structure_pristine_copy, clean="-fdxq")  # -x: files force-added despite .gitignore


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# placeholder\n", encoding="utf-8")


def _mutate(repo: Path, command: str) -> None:
    """`rm PATH`, `mv PATH NEW`, `add PATH` or `add! PATH` (force-added despite .gitignore).

    Nothing else is staged: a tracked file deleted from the worktree must count as missing, and
    an untracked file no ignore rule hides as present.
    """
    verb, *paths = command.split()
    if verb == "rm":
        target = repo / paths[0]
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    elif verb == "mv":
        (repo / paths[0]).rename(repo / paths[1])
    else:
        _touch(repo / paths[0])
        if verb == "add!":
            assert git(repo, "add", "-f", paths[0]).returncode == 0


def _after(repo: Path, validator: sv.Validator, *commands: str) -> set[Line]:
    """The violations after these changes, each with a path and a message of its own."""
    for command in commands:
        _mutate(repo, command)
    lines = {
        (v.path, v.message) for v in sv.validate_tree(sv.TrackedTree.for_path(repo), validator)
    }
    for path, message in lines:
        assert path, f"empty path for {message!r}"
        assert not message.startswith(GENERIC_PREFIXES), f"generic message: {path}: {message}"
    return lines


def _matches(lines: set[Line], expected: dict[str, str]) -> bool:
    """Whether ``lines`` are exactly ``expected`` ({path: a unique prefix of the message})."""
    return len(lines) == len(expected) and all(
        any(path == want_path and message.startswith(want) for path, message in lines)
        for want_path, want in expected.items()
    )


# (change, what it adds: the message at the change's last path, or {path: message}).
MUTATIONS: list[tuple[str, str | dict[str, str]]] = [
    ("rm apps/sts-service/tests/contract", "missing: every service needs contract tests in"),
    ("rm apps/stream-worker/tests/integration", "missing: every service needs integration"),
    ("rm libs/shared-utils/tests/unit", MISSING_UNIT),
    ("rm libs/shared-audio/pyproject.toml", MISSING_PYPROJECT),
    (
        "mv libs/shared-utils libs/SharedUtils",
        {
            "libs/SharedUtils": KEBAB,
            "libs/SharedUtils/shared_utils": "'shared_utils' " + ONE_PACKAGE,
        },
    ),
    (
        "mv libs/shared-utils/shared_utils libs/shared-utils/SharedUtils",
        {
            "libs/shared-utils/SharedUtils": "'SharedUtils' " + ONE_PACKAGE,
            "libs/shared-utils/shared_utils/__init__.py": MISSING_INIT,
            "libs/shared-utils/shared_utils/py.typed": MISSING_TYPED,
        },
    ),
    (
        "mv apps/stream-worker/stream_worker apps/stream-worker/worker",
        {
            "apps/stream-worker/worker": "'worker' " + ONE_PACKAGE,
            "apps/stream-worker/stream_worker/__init__.py": MISSING_INIT,
            "apps/stream-worker/stream_worker/py.typed": MISSING_TYPED,
        },
    ),
    (
        "add libs/shared-audio/helpers/__init__.py",
        {"libs/shared-audio/helpers": "'helpers' " + ONE_PACKAGE},
    ),
    ("rm libs/shared-audio/shared_audio/__init__.py", MISSING_INIT),
    ("rm apps/sts-service/sts_service/py.typed", MISSING_TYPED),
    ("rm Makefile", "missing: the repository root needs a Makefile"),
    ("rm docs", "missing: docs/ must exist"),
    ("add! apps/sts-service/.env", ENV_FILE),
    ("add! .env.local", ENV_FILE),
    ("add apps/sts-service/.env.example", {}),
    ("add specs/My_Spec.md", SPEC_NAME),
    ("add specs/sts-contract.md", SPEC_NAME),
    ("add specs/002-notes.txt", SPEC_NAME),
    ("add specs/002-sts-contract.md", {}),
    ("add specs/003-dubbing/spec.md", {}),  # a spec-kit feature folder
    ("add apps/sts-service/tests/unit/__init__.py", "remove it: test folders hold no __init__.py"),
    ("add libs/shared-audio/pytest.ini", PACKAGE_CONFIG),
    ("add apps/sts-service/setup.cfg", PACKAGE_CONFIG),
    ("add libs/shared-utils/requirements.txt", PACKAGE_CONFIG),
    ("add ruff.toml", PACKAGE_CONFIG),  # nor a second configuration at the root
    (
        "add! libs/shared-utils/.venv/bin/python",
        {"libs/shared-utils/.venv": "never track a virtual environment"},
    ),
    (
        "add! libs/shared-utils/shared_utils/__pycache__/x.cpython-311.pyc",
        {"libs/shared-utils/shared_utils/__pycache__": "never track bytecode"},
    ),
    (
        "add! libs/shared-audio/shared_audio.egg-info/PKG-INFO",
        {"libs/shared-audio/shared_audio.egg-info": "never track build outputs"},
    ),
    ("add! dist/x.whl", {"dist": "never track build outputs"}),
    ("add apps/notes.txt", KEBAB),
    (
        "add libs/a-b-c-d-e/README.md",  # five words
        {
            "libs/a-b-c-d-e": KEBAB,
            "libs/a-b-c-d-e/pyproject.toml": MISSING_PYPROJECT,
            "libs/a-b-c-d-e/Makefile": "missing: every package needs a Makefile",
            "libs/a-b-c-d-e/tests/unit": MISSING_UNIT,
        },
    ),
]


def _batches() -> list[list[tuple[str, dict[str, str]]]]:
    """The mutations in groups that touch distinct package folders (or top-level paths), so one
    validation checks a group without one mutation hiding another's lines."""
    batches: list[dict[str, tuple[str, dict[str, str]]]] = []
    for command, expected in MUTATIONS:
        path = command.split()[1]
        where = "/".join(path.split("/")[:2]) if path.startswith(("apps/", "libs/")) else path
        batch = next((batch for batch in batches if where not in batch), None)
        if batch is None:
            batches.append(batch := {})
        lines = {command.split()[-1]: expected} if isinstance(expected, str) else expected
        batch[where] = (command, lines)
    return [list(batch.values()) for batch in batches]


@pytest.mark.parametrize("batch", _batches(), ids=lambda batch: batch[0][0])
def test_mutations_are_reported_with_path_and_message_and_nothing_else(
    structure_copy: Path, structure_validator: sv.Validator, batch: list[tuple[str, dict[str, str]]]
) -> None:
    commands = [command for command, _ in batch]
    new = _after(structure_copy, structure_validator, *commands)
    expected = {path: message for _, lines in batch for path, message in lines.items()}
    assert _matches(new, expected), (
        f"{commands}: expected {sorted(expected.items())}, got {sorted(new)}"
    )


def test_a_new_package_of_every_word_count_is_checked(
    structure_copy: Path, structure_validator: sv.Validator
) -> None:
    folders = "libs/toolkit libs/audio2-codec apps/live-dub-gateway apps/one-two-three-four"
    imports = {folder: f"{folder}/{folder[5:].replace('-', '_')}" for folder in folders.split()}
    for folder in imports:  # as `make new-service` / `make new-lib` make them
        kind = "service" if folder.startswith("apps/") else "lib"
        generate(Spec(kind, folder[5:], "A package.", 8123, structure_copy))
    assert _after(structure_copy, structure_validator) == set()

    new = _after(structure_copy, structure_validator, *(f"rm {p}" for p in imports.values()))
    missing = {f"{p}/__init__.py": MISSING_INIT for p in imports.values()}
    assert _matches(new, {**missing, **{f"{p}/py.typed": MISSING_TYPED for p in imports.values()}})


def test_outside_git_the_walk_lists_what_git_would_track(structure_copy: Path) -> None:
    for name in (
        ".env apps/sts-service/.env.local libs/shared-audio/shared_audio/__pycache__/x.pyc "
        "libs/shared-audio/build/lib/x.py libs/shared-audio/shared_audio.egg-info/PKG-INFO "
        ".mypy_cache/x.json apps/stream-worker/.coverage apps/sts-service/.env.example "
        "libs/shared-utils/tests/unit/sample.wav libs/shared-utils/tests/unit/keep.wav"
    ).split():
        _touch(structure_copy / name)
    (structure_copy / "libs/shared-utils/.gitignore").write_text("*.wav\n!keep.wav\n")
    venv.create(structure_copy / "apps/sts-service/.venv", symlinks=True)  # files and symlinks
    walked = set(tracked.walk_files(structure_copy))
    assert set(tracked.git_files(structure_copy) or ()) == walked
    assert "apps/sts-service/.env.example" in walked
    assert "libs/shared-utils/tests/unit/keep.wav" in walked
    assert "libs/shared-utils/tests/unit/sample.wav" not in walked
    assert ".env" not in walked
    assert not [name for name in walked if ".venv" in name]


def test_dirschema_that_cannot_run_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    pydantic_2 = Mock(side_effect=TypeError("dirschema.adapters: pydantic 2 is not supported"))
    monkeypatch.setattr(importlib, "import_module", pydantic_2)
    with pytest.raises(sv.DirschemaUnavailableError, match=r"cannot run on .*pydantic\.v1.*`make"):
        sv.load_validator(SCHEMA)


def test_h5py_placeholder_does_not_leak() -> None:
    assert importlib.util.find_spec("h5py") is None, "the tools environment should not need h5py"
    sv.load_validator(SCHEMA)
    assert "h5py" not in sys.modules
    assert sys.modules["dirschema.adapters"]._has_h5 is False


def test_adapter_serves_valid_rules(structure_copy: Path) -> None:
    (structure_copy / "docs/meta.json").write_text('{"level": 1}')
    (structure_copy / "docs/meta.yaml").write_text("level: two\n")
    (structure_copy / "docs/meta.txt").write_text("a: [\n")
    _touch(structure_copy / "docs/meta.d/README")
    schema = structure_copy / "valid.yaml"
    schema.write_text(
        "if: {match: '^docs/meta\\.[a-z]+$'}\n"
        "then: {valid: {type: object, properties: {level: {type: integer}}}}\n"
    )
    assert _after(structure_copy, sv.load_validator(schema)) == {
        ("docs/meta.yaml", "/level: 'two' is not of type 'integer'"),
        ("docs/meta.txt", "File 'docs/meta.txt' could not be parsed"),
        ("docs/meta.d", "File 'docs/meta.d' could not be loaded"),
    }


def test_cli_without_the_tools_environment_says_what_to_do() -> None:
    no_site = [sys.executable, "-S", str(CLI)]  # no site-packages: no dirschema, no pathspec
    result = subprocess.run(no_site, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "is not installed" in result.stderr
    assert "run `make install` at the repo root" in result.stderr


# (change to the git copy, extra arguments, exit status, a line's start in stdout, stderr text)
# `rm .git` makes a copy outside git, whose files the walk lists.
README_MISSING = "README.md: missing: the repository root needs README.md"
NOT_DIRSCHEMA = "not a valid dirschema schema"
FAILED = "FAILED: 2 problem(s)"
MAIN_CASES = {
    "violations": ("rm README.md, add specs/B.md", "", 1, README_MISSING, FAILED),
    "success": ("", "", 0, "structure OK: ", ""),
    "success-walked": ("rm .git", "", 0, "structure OK: ", ""),
    "violations-walked": ("rm README.md, add specs/b.md, rm .git", "", 1, README_MISSING, FAILED),
    "default-schema-is-the-repos": ("rm .schemas", "", 2, "", f"{sv.DEFAULT_SCHEMA}: schema file"),
    "missing-schema": ("", "--schema {tmp}/nope.yaml", 2, "", "nope.yaml: schema file not found"),
    "invalid-schema": ("", "--schema {tmp}/dirs.yaml", 2, "", f"dirs.yaml: {NOT_DIRSCHEMA}"),
    "repo-not-a-directory": ("", "--repo {tmp}/nowhere", 2, "", "nowhere: not a directory"),
}


@pytest.mark.parametrize(
    ("change", "args", "status", "out", "err"), MAIN_CASES.values(), ids=MAIN_CASES.keys()
)
def test_main_exit_status_and_messages(
    structure_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: str,
    args: str,
    status: int,
    out: str,
    err: str,
) -> None:
    repo = structure_copy
    for command in change.split(", ") if change else []:
        if command == "rm .git":
            repo = tmp_path / "repo"
            shutil.copytree(structure_copy, repo, ignore=shutil.ignore_patterns(".git"))
        else:
            _mutate(repo, command)
    (tmp_path / "dirs.yaml").write_text("title: x\ndirs:\n  - name: specs\n")  # not dirschema rules
    monkeypatch.chdir(tmp_path)  # the default schema is <repo>/.schemas/..., wherever we run

    assert sv.main(["--repo", str(repo), *args.format(tmp=tmp_path).split()]) == status
    stdout, stderr = capsys.readouterr()
    lines = stdout.splitlines()
    assert any(line.startswith(out) for line in lines or [""]), stdout
    assert lines == sorted(lines) and all(": " in line for line in lines), stdout
    assert err in stderr and ("structure FAILED: " in stderr) == (status == 1)
    if status != 2:
        assert f"({'walk' if 'rm .git' in change else 'git'})" in stdout + stderr
    if status == 0:  # one line
        assert "paths checked (" in stdout and stdout.count("\n") == 1, stdout
