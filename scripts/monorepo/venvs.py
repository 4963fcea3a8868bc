"""Building venvs: one per package, the root tools env, docs/.venv.

The Makefiles decide *whether* a venv must be (re)built (stamp files); this module builds it,
from its lock by hash, or with ``LOCKED=0`` resolving freely within the pyproject ranges.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from itertools import pairwise
from pathlib import Path

from monorepo.locks import LockSpec, lock_path, locked_pins_current, minor_of
from monorepo.packages import ROOT, WorkspaceError

VENV = ".venv"
STAMP = ".installed"  # inside the venv: written last, only after a successful install
STAMP_DEPS = ".installed.d"  # make fragment: which files the stamp depends on


#: (step, when it ended) of one install, from ("", its start): its summary line and the install
#: bench read the time of each step.
Laps = list[tuple[str, float]]


def lap(laps: Laps, step: str) -> None:
    """Close `step` now: its time runs from the previous lap (or the start)."""
    laps.append((step, time.perf_counter()))


@dataclass(frozen=True)
class Options:
    """How to install: the interpreter, pip's verbosity, locked or floating versions."""

    python: str
    quiet: bool = True
    locked: bool = True


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv."""
    return venv / "bin" / "python"


def interpreter_identity(python: str) -> str:
    """`<real path> <version>` of an interpreter: what a venv was built with."""
    code = "import os,sys;print(os.path.realpath(sys.executable),sys.version.split()[0])"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def run(command: list[str], *, quiet: bool = False) -> None:
    """Run a command, echoing it; raise WorkspaceError naming it when it fails."""
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None, check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"command failed with exit code {result.returncode}: {command[0]} ...")


def make_venv(venv: Path, python: str, prompt: str) -> str:
    """Create `venv` unless it exists with that same interpreter; return its identity.

    Without pip: ensurepip costs ~3.5 s, pip as a requirement of the first pip call ~0.5 s.
    """
    wanted = interpreter_identity(python)
    if venv_python(venv).exists():
        try:
            if interpreter_identity(str(venv_python(venv))) == wanted:
                return wanted
        except (OSError, subprocess.CalledProcessError):
            pass  # broken venv (e.g. its interpreter was removed): rebuild it
        print(f"{venv}: built with another interpreter; rebuilding with {wanted}", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    run([python, "-m", "venv", "--without-pip", "--prompt", prompt, str(venv)])
    return wanted


def pip_for(venv: Path) -> list[str]:
    """The pip that installs into `venv`: this interpreter's, else one bootstrapped into `venv`.

    This interpreter is the tools env's (make runs the installer from it), or, building the
    tools env itself, the one the user picked; `pip --python` needs pip >= 22.3.
    """
    try:
        version = [int(part) for part in re.findall(r"\d+", metadata.version("pip"))[:2]]
    except metadata.PackageNotFoundError:  # e.g. Debian's Python without python3-pip
        version = []
    if version >= [22, 3]:
        return [sys.executable, "-m", "pip"]
    run([str(venv_python(venv)), "-m", "ensurepip", "--upgrade"], quiet=True)
    return [str(venv_python(venv)), "-m", "pip"]


def pip_install(pip: list[str], venv: Path, args: list[str], *, quiet: bool) -> None:
    """`pip install` into `venv`'s interpreter."""
    flags = ["--quiet"] if quiet else []
    # --no-compile: pip would byte-compile every file of every wheel (mypy, numpy, hypothesis:
    # ~40% of a cold install, measured); Python compiles what is actually imported, on first use.
    run([*pip, "--python", str(venv_python(venv)), "install", "--no-compile", *flags, *args])


def build_venv(
    spec: LockSpec, pip: list[str], options: Options, identity: str, laps: Laps
) -> Path | None:
    """Install `spec`'s requirements into its (existing) venv; returns the lock used, if any.

    Locked: the lock by hash, then the local projects with --no-deps. Floating: pip and the
    build backend first, so the second call can skip build isolation (a throwaway setuptools
    env per editable: ~1.5 s each), then one resolver run with every local project by path.
    """
    venv, quiet = spec.venv, options.quiet
    editables = [
        arg for path, extras in spec.editables for arg in ("--editable", f"{path}{extras}")
    ]
    lock = lock_path(spec.lock_name, minor_of(identity))
    if options.locked and lock.exists():
        warn_if_stale(spec, lock)
        # --ignore-requires-python only matters for `unresolvable` pins: the rest of the lock
        # was resolved for this very Python minor.
        flags = ["--ignore-requires-python"] if spec.unresolvable else []
        pip_install(
            pip, venv, ["--no-deps", "--require-hashes", *flags, "-r", str(lock)], quiet=quiet
        )
        lap(laps, "lock")
        pip_install(pip, venv, ["--no-deps", "--no-build-isolation", *editables], quiet=quiet)
        lap(laps, "editables")
        return lock
    if options.locked:
        unlocked = f"{spec.name}: no lock for Python {minor_of(identity)} yet: resolving freely"
        print(unlocked + " (`make lock` pins it)", flush=True)
    pip_install(pip, venv, ["pip", *spec.build_requires], quiet=quiet)
    lap(laps, "build backend")
    pip_install(pip, venv, ["--no-build-isolation", *editables], quiet=quiet)
    if spec.unresolvable:
        args = ["--no-deps", "--ignore-requires-python", *spec.unresolvable]
        pip_install(pip, venv, args, quiet=quiet)
    lap(laps, "resolve + install")
    return None


def warn_if_stale(spec: LockSpec, lock: Path) -> None:
    """Say so when the lock predates a pyproject change (`make lint` fails on it)."""
    try:
        stale = not locked_pins_current(spec, lock)
    except ImportError:  # Python 3.10 before the tools env (and its tomli) exists
        return
    if stale:
        print(f"warning: {lock.relative_to(ROOT)} is out of date: run `make lock`", flush=True)


def write_stamp(venv: Path, identity: str, inputs: list[Path]) -> None:
    """Record a successful install: the stamp, and the make fragment listing its inputs.

    Paths are relative to the venv's folder (where its Makefile runs): a repo copy still works.
    """
    rel = [os.path.relpath(path, venv.parent).replace(os.sep, "/") for path in inputs]
    lines = [f"{VENV}/{STAMP}: {' '.join(rel)}".rstrip(), ""]
    # Like gcc -MP: an empty rule per input, so a deleted library does not break make.
    lines += [f"{path}:" for path in rel]
    (venv / STAMP_DEPS).write_text("\n".join(lines) + "\n")
    (venv / STAMP).write_text(identity + "\n")


def install(spec: LockSpec, options: Options) -> None:
    """Create or refresh one venv from its spec and stamp it."""
    laps: Laps = [("", time.perf_counter())]
    (spec.venv / STAMP).unlink(missing_ok=True)  # a failed install must not look fresh
    identity = make_venv(spec.venv, options.python, spec.venv.parent.name)
    lap(laps, "venv")
    lock = build_venv(spec, pip_for(spec.venv), options, identity, laps)
    inputs = [path / "pyproject.toml" for path, _ in spec.editables if path != spec.venv.parent]
    write_stamp(spec.venv, identity, [*inputs, *([lock] if lock else [])])
    mode = f"locked by {lock.relative_to(ROOT)}" if lock else "resolved freely"
    # The bench (scripts/bench/bench_install.py) reads this line: "installed NAME in SECONDS s: ..."
    steps = ", ".join(f"{step} {end - start:.1f} s" for (_, start), (step, end) in pairwise(laps))
    total = time.perf_counter() - laps[0][1]
    print(f"installed {spec.name} in {total:.1f} s: {steps} ({mode})", flush=True)
