"""Benchmark `make install`: cold, no-op, and the researched serial loop, side by side.

Every figure comes from one run on one copy of the repo, so the ratios hold on a noisy,
shared machine. pip's download cache is warm for all three (it is shared), so what differs
is the work each approach does: venv creation, build isolation and the number of pip calls.

The researched loop (research section 4) cannot install the services at all (errata 1: pip
asks the index for `shared-audio`). It is timed here with the one change that makes it work
(errata 4: name the local libraries in the same pip call) and is otherwise as researched:
`python -m venv` with pip, `pip install --upgrade pip setuptools wheel`, build isolation,
one package after another.

Usage: .venv/bin/python scripts/bench/bench_install.py [--python python3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import workspace  # noqa: E402  (scripts beside this one, not installed modules)
from structure_validation import git_files  # noqa: E402


def copy_repo(target: Path) -> None:
    """Copy what git would track (tracked + untracked-not-ignored files): no venvs."""
    files = git_files(REPO)
    if files is None:
        raise SystemExit("the benchmark copies the repo's git-tracked files: run it in a clone")
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target / rel)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds a command took; raises if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def researched_loop(root: Path, python: str) -> float:
    """The research's serial loop, with errata 4 applied so that it can succeed."""
    packages = workspace.discover(root)
    started = time.perf_counter()
    for package in packages.values():
        venv = package.path / ".venv"
        pip = str(venv / "bin" / "pip")
        editables: list[str] = []
        for dep in workspace.local_deps(package, packages):
            editables += ["-e", str(dep.path)]
        for command in (
            [python, "-m", "venv", str(venv)],
            [pip, "install", "-q", "--upgrade", "pip", "setuptools", "wheel"],
            [pip, "install", "-q", *editables, "-e", f"{package.path}[dev]"],
        ):
            timed(command, package.path)
    return time.perf_counter() - started


def main() -> int:
    """Run the three measurements and print them with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="python3")
    args = parser.parse_args()
    make = ["make", f"PYTHON={args.python}"]
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        ours = Path(tmp) / "ours"
        theirs = Path(tmp) / "researched"
        copy_repo(ours)
        copy_repo(theirs)
        clean_env = {"MAKEFLAGS": "", "MAKELEVEL": ""}
        cold = timed([*make, "install"], ours, clean_env)
        noop = timed([*make, "install"], ours, clean_env)
        # The same cold install without the tools env, for a like-for-like comparison.
        for package in workspace.discover(ours).values():
            shutil.rmtree(package.path / ".venv")
        cold_packages = timed([*make, "install"], ours, clean_env)
        serial = researched_loop(theirs, args.python)
    count = len(workspace.discover(REPO))
    rows = [
        ("make install, cold (tools env + packages)", cold),
        (f"make install, cold ({count} packages only)", cold_packages),
        ("make install, nothing changed", noop),
        (f"researched serial loop ({count} packages, errata 4 applied)", serial),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"install benchmark (python: {args.python}; warm pip cache; one run, same machine)")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:7.2f} s")
    print(f"  cold packages vs researched loop: {serial / cold_packages:.2f}x faster")
    print(f"  no-op goal < 0.5 s: {'met' if noop < 0.5 else 'NOT MET'} ({noop:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
