"""Tests of `make validate-structure` (scripts/validate-structure.py + the dirschema schema).

Mutations are made in a copy of the repository's files (what git would track), turned into a
git repository with `git add -A`, so the git listing is exercised; a few tests remove `.git`
to exercise the walk used outside a checkout. Each mutation test validates the copy before
and after the change and compares the difference with the exact lines expected, so the tests
do not depend on how complete the rest of the repository is.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: not installed

import structure_validation as sv
from monorepo import tracked

SCRIPTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = SCRIPTS_DIR.parent
CLI = SCRIPTS_DIR / "validate-structure.py"
SCHEMA = REPO_ROOT / ".schemas" / "monorepo-structure.yaml"


Line = tuple[str, str]

# dirschema's own messages, which the schema's descriptions must always replace.
GENERIC_PREFIXES = (
    "All of",
    "At least",
    "Exactly",
    "Failed to",
    "Entity ",
    "Negated",
    "Reached unsatisfiable",
    "Validation failed",
)

# The schema's descriptions, as printed (abbreviated to a unique prefix).
MISSING_CONTRACT = "missing: every service needs contract tests in tests/contract/"
MISSING_INTEGRATION = "missing: every service needs integration tests in tests/integration/"
MISSING_UNIT = "missing: every package needs unit tests in tests/unit/"
MISSING_PYPROJECT = "missing: every package needs pyproject.toml"
MISSING_INIT = (
    "missing: the import package (the package folder's name with '-' replaced by '_') "
    "needs __init__.py"
)
MISSING_TYPED = "missing: the import package needs an empty py.typed marker"
MISSING_ROOT_MAKEFILE = "missing: the repository root needs a Makefile"
MISSING_DOCS = "missing: docs/ must exist"
KEBAB = "apps/ and libs/ hold only package folders named in kebab-case"
ONE_PACKAGE = "is a Python package, but a package folder holds exactly one"
ENV_FILE = "never track a .env file"
SPEC_NAME = "rename it: files in specs/ are named NNN-kebab-case.md"
TEST_INIT = "remove it: test folders hold no __init__.py"
PACKAGE_CONFIG = "remove it: tool configuration lives only in the root pyproject.toml"
VENV = "never track a virtual environment"
PYCACHE = "never track bytecode"
BUILD = "never track build outputs"


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def structure_validator() -> sv.Validator:
    return sv.load_validator(SCHEMA)


@pytest.fixture(scope="session")
def structure_pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (what git would track), copied once and made a git repository.

    Whatever the other packages have not finished yet is filled in with placeholders
    (:func:`_ensure_layout`), so that each mutation starts from a state where it breaks
    something that was there.
    """
    destination = tmp_path_factory.mktemp("structure") / "pristine"
    for name in sv.TrackedTree.for_path(REPO_ROOT).files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    _ensure_layout(destination)
    _git_snapshot(destination)
    return destination


@pytest.fixture(scope="session")
def structure_baseline(
    structure_pristine_copy: Path, structure_validator: sv.Validator
) -> set[Line]:
    """The violations of the pristine copy (none once the repository is complete)."""
    return _lines(structure_pristine_copy, structure_validator)


@pytest.fixture
def structure_copy(structure_pristine_copy: Path, tmp_path: Path) -> Path:
    """A fresh copy (a git repository) of the pristine copy for one test to mutate."""
    destination = tmp_path / "repo"
    shutil.copytree(structure_pristine_copy, destination, symlinks=True)
    return destination


def _without_git(repo: Path) -> Path:
    shutil.rmtree(repo / ".git")
    return repo


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


def _git_snapshot(repo: Path) -> None:
    """Make ``repo`` a git repository tracking every file its .gitignore allows."""
    if not (repo / ".git").exists():
        _git(repo, "init", "-q", "--template=")  # no sample hooks: faster copies
    _git(repo, "add", "-A")


def _lines(repo: Path, validator: sv.Validator) -> set[Line]:
    tree = sv.TrackedTree.for_path(repo)
    return {(v.path, v.message) for v in sv.validate_tree(tree, validator)}


def _touch(path: Path, text: str = "# placeholder\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text, encoding="utf-8")


def _ensure_package(repo: Path, folder: str, import_name: str, *, app: bool) -> None:
    """Make sure the copy holds a complete package at ``folder`` (whatever others finished)."""
    base = repo / folder
    for name in ("pyproject.toml", "Makefile", "README.md", "tests/unit/test_placeholder.py"):
        _touch(base / name)
    _touch(base / import_name / "__init__.py")
    _touch(base / import_name / "py.typed", "")
    if app:
        _touch(base / "tests/contract/test_placeholder.py")
        _touch(base / "tests/integration/test_placeholder.py")


def _ensure_layout(repo: Path) -> None:
    for folder, import_name, app in (
        ("apps/sts-service", "sts_service", True),
        ("apps/stream-worker", "stream_worker", True),
        ("libs/shared-audio", "shared_audio", False),
        ("libs/shared-utils", "shared_utils", False),
    ):
        _ensure_package(repo, folder, import_name, app=app)
    for name in (
        "Makefile",
        "README.md",
        "docs/index.md",
        "specs/001-placeholder.md",
        "infra/README.md",
        ".codex/README.md",
        ".specify/templates/spec.md",
        ".specify/test-fixtures/README.md",
        "scripts/tests/test_placeholder.py",
        ".github/workflows/validate.yml",
    ):
        _touch(repo / name)


def _assert_readable(lines: set[Line]) -> None:
    for path, message in lines:
        assert path, f"empty path for {message!r}"
        assert not message.startswith(GENERIC_PREFIXES), f"generic message: {path}: {message}"


def _matches(lines: set[Line], expected: set[Line]) -> bool:
    """Whether ``lines`` are exactly ``expected`` (messages given by a unique prefix)."""
    if len(lines) != len(expected):
        return False
    return all(
        any(path == want_path and message.startswith(want) for path, message in lines)
        for want_path, want in expected
    )


def _diff_after(
    repo: Path, validator: sv.Validator, before: set[Line], mutate: Callable[[Path], None]
) -> set[Line]:
    """Apply ``mutate`` to the git repository ``repo``; return the violations it added."""
    mutate(repo)
    _git_snapshot(repo)
    after = _lines(repo, validator)
    _assert_readable(after)
    return after - before


# ---------------------------------------------------------------------------------------------
# The repository itself
# ---------------------------------------------------------------------------------------------
def test_clean_checkout_passes() -> None:
    result = subprocess.run([sys.executable, str(CLI)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("structure OK: ")
    assert result.stdout.count("\n") == 1


def test_completed_copy_of_the_repository_has_no_violations(
    structure_copy: Path, structure_validator: sv.Validator
) -> None:
    assert _lines(structure_copy, structure_validator) == set()


# ---------------------------------------------------------------------------------------------
# Mutations: each is reported with the right path and message, and nothing else is
# ---------------------------------------------------------------------------------------------
def _remove(relative: str) -> Callable[[Path], None]:
    def mutate(repo: Path) -> None:
        target = repo / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return mutate


def _rename(source: str, destination: str) -> Callable[[Path], None]:
    def mutate(repo: Path) -> None:
        (repo / source).rename(repo / destination)

    return mutate


def _add(relative: str, *, force: bool = False) -> Callable[[Path], None]:
    def mutate(repo: Path) -> None:
        _touch(repo / relative)
        if force:  # simulate a file committed despite .gitignore
            _git(repo, "add", "-f", relative)

    return mutate


MUTATIONS: list[tuple[str, Callable[[Path], None], set[Line]]] = [
    (
        "service-without-tests-contract",
        _remove("apps/sts-service/tests/contract"),
        {("apps/sts-service/tests/contract", MISSING_CONTRACT)},
    ),
    (
        "service-without-tests-integration",
        _remove("apps/stream-worker/tests/integration"),
        {("apps/stream-worker/tests/integration", MISSING_INTEGRATION)},
    ),
    (
        "library-without-tests-unit",
        _remove("libs/shared-utils/tests/unit"),
        {("libs/shared-utils/tests/unit", MISSING_UNIT)},
    ),
    (
        "library-without-pyproject",
        _remove("libs/shared-audio/pyproject.toml"),
        {("libs/shared-audio/pyproject.toml", MISSING_PYPROJECT)},
    ),
    (
        "camelcase-package-folder",
        _rename("libs/shared-utils", "libs/SharedUtils"),
        {
            ("libs/SharedUtils", KEBAB),
            ("libs/SharedUtils/shared_utils", "'shared_utils' " + ONE_PACKAGE),
        },
    ),
    (
        "camelcase-import-folder",
        _rename("libs/shared-utils/shared_utils", "libs/shared-utils/SharedUtils"),
        {
            ("libs/shared-utils/SharedUtils", "'SharedUtils' " + ONE_PACKAGE),
            ("libs/shared-utils/shared_utils/__init__.py", MISSING_INIT),
            ("libs/shared-utils/shared_utils/py.typed", MISSING_TYPED),
        },
    ),
    (
        "import-folder-not-matching-name",
        _rename("apps/stream-worker/stream_worker", "apps/stream-worker/worker"),
        {
            ("apps/stream-worker/worker", "'worker' " + ONE_PACKAGE),
            ("apps/stream-worker/stream_worker/__init__.py", MISSING_INIT),
            ("apps/stream-worker/stream_worker/py.typed", MISSING_TYPED),
        },
    ),
    (
        "second-package-in-a-package-folder",
        _add("libs/shared-audio/helpers/__init__.py"),
        {("libs/shared-audio/helpers", "'helpers' " + ONE_PACKAGE)},
    ),
    (
        "missing-init",
        _remove("libs/shared-audio/shared_audio/__init__.py"),
        {("libs/shared-audio/shared_audio/__init__.py", MISSING_INIT)},
    ),
    (
        "missing-py-typed",
        _remove("apps/sts-service/sts_service/py.typed"),
        {("apps/sts-service/sts_service/py.typed", MISSING_TYPED)},
    ),
    (
        "missing-root-makefile",
        _remove("Makefile"),
        {("Makefile", MISSING_ROOT_MAKEFILE)},
    ),
    ("missing-docs-folder", _remove("docs"), {("docs", MISSING_DOCS)}),
    (
        "tracked-env",
        _add("apps/sts-service/.env", force=True),
        {("apps/sts-service/.env", ENV_FILE)},
    ),
    ("tracked-env-local", _add(".env.local", force=True), {(".env.local", ENV_FILE)}),
    ("env-example-is-fine", _add("apps/sts-service/.env.example"), set()),
    ("badly-named-spec", _add("specs/My_Spec.md"), {("specs/My_Spec.md", SPEC_NAME)}),
    ("spec-without-number", _add("specs/sts-contract.md"), {("specs/sts-contract.md", SPEC_NAME)}),
    ("spec-not-markdown", _add("specs/002-notes.txt"), {("specs/002-notes.txt", SPEC_NAME)}),
    ("well-named-spec", _add("specs/002-sts-contract.md"), set()),
    ("spec-kit-feature-folder", _add("specs/003-dubbing/spec.md"), set()),
    (
        "init-in-tests",
        _add("apps/sts-service/tests/unit/__init__.py"),
        {("apps/sts-service/tests/unit/__init__.py", TEST_INIT)},
    ),
    (
        "package-level-pytest-ini",
        _add("libs/shared-audio/pytest.ini"),
        {("libs/shared-audio/pytest.ini", PACKAGE_CONFIG)},
    ),
    (
        "package-level-setup-cfg",
        _add("apps/sts-service/setup.cfg"),
        {("apps/sts-service/setup.cfg", PACKAGE_CONFIG)},
    ),
    (
        "tracked-venv",
        _add("libs/shared-utils/.venv/bin/python", force=True),
        {("libs/shared-utils/.venv", VENV)},
    ),
    (
        "tracked-pycache",
        _add("libs/shared-utils/shared_utils/__pycache__/x.cpython-311.pyc", force=True),
        {("libs/shared-utils/shared_utils/__pycache__", PYCACHE)},
    ),
    (
        "tracked-egg-info",
        _add("libs/shared-audio/shared_audio.egg-info/PKG-INFO", force=True),
        {("libs/shared-audio/shared_audio.egg-info", BUILD)},
    ),
    ("tracked-dist", _add("dist/x.whl", force=True), {("dist", BUILD)}),
    ("file-directly-in-apps", _add("apps/notes.txt"), {("apps/notes.txt", KEBAB)}),
    (
        "package-name-with-five-words",
        _add("libs/a-b-c-d-e/README.md"),
        {
            ("libs/a-b-c-d-e", KEBAB),
            ("libs/a-b-c-d-e/pyproject.toml", MISSING_PYPROJECT),
            ("libs/a-b-c-d-e/Makefile", "missing: every package needs a Makefile"),
            ("libs/a-b-c-d-e/tests/unit", MISSING_UNIT),
        },
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=name) for name, mutate, expected in MUTATIONS],
)
def test_mutation_is_reported_with_path_and_message(
    structure_copy: Path,
    structure_validator: sv.Validator,
    structure_baseline: set[Line],
    mutate: Callable[[Path], None],
    expected: set[Line],
) -> None:
    new = _diff_after(structure_copy, structure_validator, structure_baseline, mutate)
    assert _matches(new, expected), f"expected {sorted(expected)}, got {sorted(new)}"


@pytest.mark.parametrize(
    ("folder", "import_name"),
    [
        ("libs/toolkit", "toolkit"),
        ("libs/audio2-codec", "audio2_codec"),
        ("apps/live-dub-gateway", "live_dub_gateway"),
        ("apps/one-two-three-four", "one_two_three_four"),
    ],
)
def test_new_package_of_every_word_count_is_checked(
    structure_copy: Path,
    structure_validator: sv.Validator,
    structure_baseline: set[Line],
    folder: str,
    import_name: str,
) -> None:
    app = folder.startswith("apps/")

    def complete(repo: Path) -> None:
        _ensure_package(repo, folder, import_name, app=app)

    new = _diff_after(structure_copy, structure_validator, structure_baseline, complete)
    assert new == set()

    before = _lines(structure_copy, structure_validator)
    new = _diff_after(
        structure_copy, structure_validator, before, _remove(f"{folder}/{import_name}")
    )
    assert _matches(
        new,
        {
            (f"{folder}/{import_name}/__init__.py", MISSING_INIT),
            (f"{folder}/{import_name}/py.typed", MISSING_TYPED),
        },
    )


# ---------------------------------------------------------------------------------------------
# Outside git, and with populated virtual environments
# ---------------------------------------------------------------------------------------------
def test_outside_git_the_walk_reports_mutations(
    structure_copy: Path, structure_validator: sv.Validator
) -> None:
    _without_git(structure_copy)
    assert sv.TrackedTree.for_path(structure_copy).source == "walk"
    before = _lines(structure_copy, structure_validator)
    _remove("apps/sts-service/sts_service/py.typed")(structure_copy)
    _touch(structure_copy / "specs/bad.md")
    after = _lines(structure_copy, structure_validator)
    assert _matches(
        after - before,
        {
            ("apps/sts-service/sts_service/py.typed", MISSING_TYPED),
            ("specs/bad.md", SPEC_NAME),
        },
    )


def test_outside_git_the_walk_lists_what_git_would_track(structure_copy: Path) -> None:
    for name in (
        ".env",
        "apps/sts-service/.env.local",
        "libs/shared-audio/shared_audio/__pycache__/x.pyc",
        "libs/shared-audio/build/lib/x.py",
        "libs/shared-audio/shared_audio.egg-info/PKG-INFO",
        ".mypy_cache/x.json",
        "apps/stream-worker/.coverage",
    ):
        _touch(structure_copy / name)
    _touch(structure_copy / "apps/sts-service/.env.example")
    (structure_copy / "libs/shared-utils/.gitignore").write_text("*.wav\n!keep.wav\n")
    _touch(structure_copy / "libs/shared-utils/tests/unit/sample.wav")
    _touch(structure_copy / "libs/shared-utils/tests/unit/keep.wav")
    walked = set(tracked.walk_files(structure_copy))
    _git_snapshot(structure_copy)
    assert set(tracked.git_files(structure_copy) or ()) == walked
    assert "apps/sts-service/.env.example" in walked
    assert "libs/shared-utils/tests/unit/keep.wav" in walked
    assert "libs/shared-utils/tests/unit/sample.wav" not in walked
    assert ".env" not in walked


def test_tracked_file_deleted_from_the_worktree_is_missing(
    structure_copy: Path, structure_validator: sv.Validator
) -> None:
    (structure_copy / "libs/shared-audio/shared_audio/py.typed").unlink()  # not staged
    assert ("libs/shared-audio/shared_audio/py.typed", MISSING_TYPED[:20]) in {
        (path, message[:20]) for path, message in _lines(structure_copy, structure_validator)
    }


@pytest.mark.slow  # creates a real virtual environment (~5 s)
def test_populated_venv_changes_nothing(
    structure_copy: Path, structure_validator: sv.Validator
) -> None:
    repo = structure_copy
    tree_before = sv.TrackedTree.for_path(repo)
    lines_before = _lines(repo, structure_validator)

    venv_dir = repo / "apps/sts-service/.venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    on_disk = sum(1 for _ in venv_dir.rglob("*"))
    assert on_disk > 500  # a real, populated environment (pip is in it)

    for mode in ("git", "walk"):
        if mode == "walk":
            shutil.rmtree(repo / ".git")
        tree = sv.TrackedTree.for_path(repo)
        assert tree.source == mode
        assert len(tree.get_paths()) == len(tree_before.get_paths())
        assert _lines(repo, structure_validator) == lines_before


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def _cli(
    *args: str, python: tuple[str, ...] = (sys.executable,)
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*python, str(CLI), *args], capture_output=True, text=True, check=False)


def test_cli_prints_one_line_per_violation_and_exits_1(structure_copy: Path) -> None:
    (structure_copy / "Makefile").unlink()
    _touch(structure_copy / "specs/Bad.md")
    result = _cli("--repo", str(structure_copy))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"Makefile: {MISSING_ROOT_MAKEFILE}") for line in lines)
    assert any(line.startswith(f"specs/Bad.md: {SPEC_NAME}") for line in lines)
    assert lines == sorted(lines)
    assert all(": " in line for line in lines)
    assert "structure FAILED: " in result.stderr


def test_cli_success_line(structure_copy: Path) -> None:
    _without_git(structure_copy)
    schema = structure_copy / "ok.yaml"
    schema.write_text("true\n")
    result = _cli("--repo", str(structure_copy), "--schema", str(schema))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("structure OK: ")
    assert "paths checked (walk)" in result.stdout


def test_cli_default_schema_is_relative_to_repo(structure_copy: Path, tmp_path: Path) -> None:
    (structure_copy / ".schemas/monorepo-structure.yaml").write_text(
        "if: {match: '^specs/.*'}\nthen: {type: false, description: no specs here}\n"
    )
    result = subprocess.run(
        [sys.executable, str(CLI), "--repo", str(structure_copy)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "specs/001-placeholder.md: no specs here" in result.stdout.splitlines()


def test_cli_missing_schema_exits_2(structure_copy: Path) -> None:
    result = _cli("--repo", str(structure_copy), "--schema", str(structure_copy / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: schema file not found" in result.stderr


def test_cli_invalid_schema_exits_2(tmp_path: Path) -> None:
    schema = tmp_path / "dirs-style.yaml"
    schema.write_text("title: x\ndirs:\n  - name: specs\n")  # `dirs:` style, not dirschema rules
    result = _cli("--schema", str(schema))
    assert result.returncode == 2
    assert "dirs-style.yaml: not a valid dirschema schema" in result.stderr


def test_cli_repo_not_a_directory_exits_2(tmp_path: Path) -> None:
    result = _cli("--repo", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "missing: not a directory" in result.stderr


def test_cli_without_the_tools_environment_says_what_to_do() -> None:
    result = _cli(python=(sys.executable, "-S"))  # no site-packages: no dirschema, no pathspec
    assert result.returncode == 2
    assert "run `make install` at the repo root" in result.stderr


def test_missing_dirschema_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "dirschema" or m.startswith("dirschema.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dirschema", None)  # makes the import fail
    with pytest.raises(sv.DirschemaUnavailableError, match="run `make install` at the repo root"):
        sv.load_validator(SCHEMA)


def test_dirschema_that_cannot_run_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_import(name: str) -> object:
        raise TypeError(f"{name}: pydantic 2 is not supported")

    for name in [m for m in sys.modules if m == "dirschema" or m.startswith("dirschema.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(importlib, "import_module", broken_import)
    with pytest.raises(sv.DirschemaUnavailableError) as caught:
        sv.load_validator(SCHEMA)
    message = str(caught.value)
    assert "cannot run on" in message
    assert "pydantic<2" in message
    assert "run `make install` at the repo root" in message


def test_h5py_placeholder_does_not_leak() -> None:
    if importlib.util.find_spec("h5py") is not None:
        pytest.fail("the tools environment should not need h5py (see docs)")
    sv.load_validator(SCHEMA)
    assert "h5py" not in sys.modules
    assert sys.modules["dirschema.adapters"]._has_h5 is False


def test_adapter_serves_valid_rules(structure_copy: Path) -> None:
    (structure_copy / "docs/meta.json").write_text('{"level": 1}')
    (structure_copy / "docs/meta.yaml").write_text("level: two\n")
    (structure_copy / "docs/broken.yaml").write_text("a: [\n")
    schema = structure_copy / "valid.yaml"
    schema.write_text(
        "if: {match: '^docs/meta\\..*'}\n"
        "then: {valid: {type: object, properties: {level: {type: integer}}}}\n"
    )
    validator = sv.load_validator(schema)
    tree = sv.TrackedTree.for_path(structure_copy)
    lines = {(v.path, v.message) for v in sv.validate_tree(tree, validator)}
    assert lines == {("docs/meta.yaml", "/level: 'two' is not of type 'integer'")}
    assert tree.load_meta("docs/broken.yaml") is None
    assert tree.load_meta("docs/absent.json") is None
    assert tree.open_file("docs") is None


def test_main_in_process(structure_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (structure_copy / "README.md").unlink()
    assert sv.main(["--repo", str(structure_copy)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("README.md: missing: the repository root needs README.md")
    assert "structure FAILED: 1 problem(s)" in err

    _touch(structure_copy / "README.md")
    assert sv.main(["--repo", str(structure_copy)]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("structure OK: ") and "(git)" in out

    assert sv.main(["--repo", str(structure_copy / "nowhere")]) == 2
    _, err = capsys.readouterr()
    assert "nowhere: not a directory" in err
