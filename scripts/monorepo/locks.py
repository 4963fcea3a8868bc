"""The lock: exact versions with hashes for every venv, one file per venv and Python minor.

pip-tools' hashed format (docs/decisions/0010-lock-with-pip-tools.md), without the local
packages. The first line is a digest of the dependency lists the lock was compiled from: when
it no longer matches, `make lint` says to run `make lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from monorepo.packages import ROOT, Package, WorkspaceError, discover, load_toml, local_deps

LOCKS = ROOT / "locks"
SUPPORTED_MINORS = ("3.10", "3.11", "3.12", "3.13")
DIGEST_PREFIX = "# inputs-digest: "
PIP_TOOLS = "pip-tools>=7.5,<8"
# dirschema's metadata wrongly refuses Python 3.11+ (decision 0006): no resolver takes it, so
# it is installed apart, --no-deps --ignore-requires-python, and its hash added to the tools lock.
DIRSCHEMA = "dirschema==0.1.0"


@dataclass(frozen=True)
class LockSpec:
    """One venv: what goes into it, and under which name its lock is kept."""

    name: str  # shown to the user: "tools", "docs", "apps/sts-service"
    lock_name: str  # file stem: "tools", "docs", "sts-service", "sts-service.engines"
    venv: Path
    editables: list[tuple[Path, str]]  # local projects, dependencies first, with "[extras]"
    build_requires: tuple[str, ...] = ("setuptools>=61.0",)
    unresolvable: tuple[str, ...] = field(default=())  # --no-deps --ignore-requires-python

    def inputs(self) -> str:
        """The dependency lists this venv is made of, as canonical JSON (what the digest covers)."""
        parts: list[object] = [sorted(self.build_requires), sorted(self.unresolvable)]
        for path, extras in self.editables:
            project = load_toml(path / "pyproject.toml")["project"]
            groups = project.get("optional-dependencies", {})
            wanted = [g for g in extras.strip("[]").split(",") if g]
            parts.append([project["name"], project.get("dependencies", [])])
            parts += [[group, groups.get(group, [])] for group in wanted]
        return json.dumps(parts, sort_keys=True)

    def digest(self) -> str:
        """sha256 of `inputs`."""
        return hashlib.sha256(self.inputs().encode()).hexdigest()


def minor_of(identity: str) -> str:
    """`3.11` from an interpreter identity `<path> 3.11.7`."""
    return ".".join(identity.split()[-1].split(".")[:2])


def lock_path(lock_name: str, minor: str) -> Path:
    """Where the lock of one venv for one Python minor lives."""
    return LOCKS / f"py{minor}" / f"{lock_name}.txt"


def locked_pins_current(spec: LockSpec, lock: Path) -> bool:
    """Whether the lock exists and was compiled from the pyprojects as they are now."""
    return lock.exists() and lock.read_text().startswith(DIGEST_PREFIX + spec.digest() + "\n")


def package_spec(
    package: Package, packages: dict[str, Package], extras: tuple[str, ...] = ()
) -> LockSpec:
    """A package's venv: its local libraries, then itself with [dev] and the chosen extras."""
    chosen = [e for e in package.extras if e in extras]
    return LockSpec(
        name=package.rel,
        lock_name=".".join([package.name, *chosen]),
        venv=package.path / ".venv",
        editables=[(dep.path, "") for dep in local_deps(package, packages)]
        + [(package.path, f"[{','.join(['dev', *chosen])}]")],
    )


def tools_spec() -> LockSpec:
    """The root tools env: the root's `tools` extra, and dirschema."""
    return LockSpec(
        "tools", "tools", ROOT / ".venv", [(ROOT, "[tools]")], unresolvable=(DIRSCHEMA,)
    )


def docs_spec(packages: dict[str, Package]) -> LockSpec:
    """docs/.venv: Sphinx (the root `docs` extra) and every package, libraries first."""
    ordered = dict.fromkeys(d for p in packages.values() for d in [*local_deps(p, packages), p])
    editables = [(p.path, "") for p in ordered] + [(ROOT, "[docs]")]
    return LockSpec("docs", "docs", ROOT / "docs" / ".venv", editables)


def all_specs(packages: dict[str, Package]) -> list[LockSpec]:
    """Every venv the repo builds, each package once per extra (extras are locked too)."""
    specs = [tools_spec(), docs_spec(packages)]
    for package in packages.values():
        specs.append(package_spec(package, packages))
        specs += [package_spec(package, packages, (extra,)) for extra in package.extras]
    return specs


#: Run from the tools env against every package (mypy's pydantic plugin): the version that runs
#: must be the version each package imports.
SHARED_WITH_TOOLS = ("pydantic",)


def drift(packages: dict[str, Package]) -> tuple[list[str], list[str]]:
    """(errors, notes): stale locks, SHARED_WITH_TOOLS drift, venvs not locked yet.

    An error: a lock compiled from other dependency lists, or one pinning a SHARED_WITH_TOOLS
    distribution at another version than the tools lock. A package with no lock yet (one
    `make new-lib` just made) is a note, and so is a lock that is stale only because it holds
    such a package (docs/.venv holds them all): a generated package passes every loop before
    anyone runs `make lock`.
    """
    errors: list[str] = []
    notes: list[str] = []
    specs = all_specs(packages)
    for folder in sorted(LOCKS.glob("py3.*")):
        minor = folder.name.removeprefix("py")
        new = {p.path for p in packages.values() if not lock_path(p.name, minor).exists()}
        tools_lock = lock_path(tools_spec().lock_name, minor)
        tools_pins = pins(tools_lock.read_text()) if tools_lock.exists() else {}
        for spec in specs:
            lock = lock_path(spec.lock_name, minor)
            rel = lock.relative_to(ROOT)
            if not lock.exists():
                notes.append(
                    f"{rel}: not locked yet ({spec.name} resolves freely); run `make lock`"
                )
                continue
            if not locked_pins_current(spec, lock):
                problem = f"{rel}: {spec.name}'s pyproject dependencies changed since this lock "
                stale_by_new = any(path in new for path, _ in spec.editables)
                (notes if stale_by_new else errors).append(problem + "was made: run `make lock`")
            locked = pins(lock.read_text())
            errors += [
                f"{rel}: {name} {locked[name]}, but the tools env (whose mypy plugin checks this "
                f"package) has {tools_pins.get(name)}: run `make lock-upgrade`"
                for name in SHARED_WITH_TOOLS
                if tools_pins and name in locked and locked[name] != tools_pins.get(name)
            ]
    return errors, notes


def pins(text: str) -> dict[str, str]:
    """{name: version} of a lock's text."""
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==([^ \\\n]+)", text, re.MULTILINE))


def lock_env(python: str, minor: str) -> Path:
    """A venv with pip-tools for one Python minor (kept under .make/, reused)."""
    env = ROOT / ".make" / f"lock-env-py{minor}"
    if not (env / "bin" / "pip-compile").exists():
        subprocess.run([python, "-m", "venv", "--clear", str(env)], check=True)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "pip>=25", PIP_TOOLS], check=True)
    return env


def _without_local_projects(text: str) -> str:
    """pip-tools' output minus the local editables (absolute paths) and its warnings."""
    kept: list[str] = []
    skipping = False  # the "# via" lines below an "-e" line
    for line in text.splitlines():
        skipping = line.startswith("-e ") or (skipping and line.startswith("    #"))
        warning = ("# WARNING: pip install will require", "# Consider using a hashable")
        if not skipping and not line.startswith(warning):
            kept.append(line)
    # The input file lives in a temporary folder: keep only its name, so locks diff cleanly.
    return re.sub(r"-r \S*/([^/\s]+\.in)", r"-r \1", "\n".join(kept)).strip() + "\n"


def _unresolvable_lines(env: Path, requirements: tuple[str, ...]) -> list[str]:
    """`name==version --hash=...` for requirements no resolver accepts (downloaded, hashed)."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for requirement in requirements:
            download = [str(env / "bin" / "pip"), "download", "-q", "--no-deps"]
            subprocess.run(
                [*download, "--ignore-requires-python", "-d", folder, requirement], check=True
            )
        for wheel in sorted(Path(folder).iterdir()):
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            name, version = wheel.name.split("-")[:2]
            lines.append(
                f"{name}=={version} \\\n    --hash=sha256:{digest}\n"
                "    # via the root pyproject (--no-deps --ignore-requires-python)"
            )
    return lines


def compile_lock(
    spec: LockSpec, env: Path, minor: str, upgrade: list[str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Write one lock with pip-compile; returns (old pins, new pins).

    pip-compile keeps the versions of an existing lock where they still fit (so `make lock`
    moves nothing it need not move); `upgrade` ([] = everything) lets versions move.
    """
    lock = lock_path(spec.lock_name, minor)
    old = lock.read_text() if lock.exists() else ""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / f"{spec.lock_name}.in"
        lines = ["pip", *spec.build_requires, *(f"-e {p}{e}" for p, e in spec.editables)]
        source.write_text("\n".join(lines) + "\n")
        output = Path(folder) / f"{spec.lock_name}.txt"
        output.write_text(old)
        command = [str(env / "bin" / "pip-compile"), "--quiet", "--generate-hashes"]
        command += ["--allow-unsafe", "--strip-extras", "--no-header", "--no-emit-index-url"]
        command += ["--no-emit-find-links", "--no-emit-trusted-host", "--output-file", str(output)]
        command += [str(source), *(["--upgrade"] if upgrade == [] else [])]
        command += [arg for name in upgrade or [] for arg in ("--upgrade-package", name)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise WorkspaceError(f"pip-compile failed for {spec.name} on Python {minor}")
        body = _without_local_projects(output.read_text())
    extra = _unresolvable_lines(env, spec.unresolvable)
    header = f"# {spec.name} on Python {minor}: written by `make lock`, do not edit."
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(
        "\n".join([DIGEST_PREFIX + spec.digest(), header, body.rstrip(), *extra]) + "\n"
    )
    return pins(old), pins(lock.read_text())


def pythons() -> dict[str, str]:
    """{minor: interpreter} for every supported minor on this machine (pyenv, else PATH)."""
    found = {minor: path for minor in SUPPORTED_MINORS if (path := shutil.which(f"python{minor}"))}
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return found
    command = [pyenv, "versions", "--bare"]
    versions = subprocess.run(command, capture_output=True, text=True, check=False).stdout.split()
    for minor in SUPPORTED_MINORS:
        same = [v for v in versions if re.fullmatch(re.escape(minor) + r"\.\d+", v)]
        if same:  # the newest of them, as pyenv resolves it
            env = {**os.environ, "PYENV_VERSION": max(same, key=lambda v: int(v.split(".")[2]))}
            which = [pyenv, "which", f"python{minor}"]
            located = subprocess.run(which, capture_output=True, text=True, env=env, check=False)
            if located.returncode == 0:
                found[minor] = located.stdout.strip()
    return dict(sorted(found.items()))


def lock_all(upgrade: list[str] | None) -> None:
    """Compile every venv's lock for every supported Python minor found on this machine."""
    packages, found = discover(), pythons()
    print(f"locking for Python {', '.join(found)} (other supported minors: not on this machine)")
    # Without --upgrade, a lock whose inputs have not changed would come out the same: skip it.
    jobs = [
        (spec, minor)
        for minor in found
        for spec in all_specs(packages)
        if upgrade is not None or not locked_pins_current(spec, lock_path(spec.lock_name, minor))
    ]
    print(f"lock: {len(jobs)} lock(s) to compile" + ("" if jobs else ": every lock is current"))
    envs = {minor: lock_env(found[minor], minor) for minor in {minor for _, minor in jobs}}

    def one(job: tuple[LockSpec, str]) -> list[str]:
        spec, minor = job
        old, new = compile_lock(spec, envs[minor], minor, upgrade)
        return [
            f"  py{minor}/{spec.lock_name}: {name} {old.get(name) or '(new)'} -> "
            f"{new.get(name) or '(removed)'}"
            for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        changes = [line for lines in pool.map(one, jobs) for line in lines]
    print("\n".join(changes) if changes else "lock: no version changed")
