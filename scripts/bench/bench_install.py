"""Benchmark installs and the test loop, each beside its reference, in one run on one machine.

Rows (pip's download cache is warm for all; every figure comes from this one run, so the ratios
hold on a noisy shared machine):
* `make install`, cold (every package venv from its lock, in parallel), and with nothing
  changed; the interpreter named as a newcomer does (none given: `python3`), unless --python;
* where the cold install's time goes: each package's steps (venv, lock, editables), read from
  the installer's own "installed NAME in ..." lines;
* uv: `uv pip install` of the same locked set into fresh venvs (a reference only: uv is put in
  a throwaway venv for the benchmark and is not a dependency of the repo);
* pip's floor: bare pip calls installing that same locked set, one package after another,
  with every shortcut pip has (no pip in the venv, no byte-compiling, no resolver, no build
  isolation): what pip cannot go below on this machine;
* the naive serial loop: per package `python -m venv` with pip, `pip install --upgrade pip
  setuptools wheel`, then the package with build isolation and free resolution (its local
  libraries named by path in the same call, without which it cannot install at all);
* the test loop: root `make test` (no test marked slow) beside `make test-all` (SLOW=1).

Usage: .venv/bin/python scripts/bench/bench_install.py [--python python3.12] [--skip-tests]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from monorepo.locks import LockSpec, lock_path, minor_of, package_spec  # noqa: E402  (beside this script)
from monorepo.packages import discover, local_deps  # noqa: E402
from monorepo.venvs import interpreter_identity  # noqa: E402

# An outer make's variables (and the options of a make started by hand) must not leak in.
OUTER_MAKE = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHON", "SLOW", "SINCE", "LOCKED", "ENGINES"}


def copy_repo(target: Path) -> None:
    """Clone the repo's last commit: no venvs, and the history the scaffold's tests need."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds a command took; raises if it fails."""
    return timed_output(command, cwd, env)[0]


def timed_output(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, str]:
    """Seconds a command took, and its output; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, check=False,
        env={**{k: v for k, v in os.environ.items() if k not in OUTER_MAKE}, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-4000:]}")
    return time.perf_counter() - started, done.stdout


# The installer's summary line: "installed NAME in 12.3 s: venv 0.1 s, lock 10.2 s, ..."
INSTALLED = re.compile(r"^installed (\S+) in ([\d.]+) s: (.*?) \(", re.MULTILINE)


def where_time_goes(output: str) -> list[str]:
    """One line per venv a make install built: its total and its steps."""
    return [f"{name:<20} {float(total):6.1f} s  ({steps})" for name, total, steps in
            INSTALLED.findall(output)]  # fmt: skip


def package_venvs(root: Path) -> None:
    """Remove every package venv of a copy (the tools env stays)."""
    for package in discover(root).values():
        shutil.rmtree(package.path / ".venv", ignore_errors=True)


def naive_loop(root: Path, python: str) -> float:
    """The usual hand-written install loop, with the local libraries named so it can succeed."""
    packages = discover(root)
    started = time.perf_counter()
    for package in packages.values():
        venv = package.path / ".venv"
        pip = str(venv / "bin" / "pip")
        editables = [arg for dep in local_deps(package, packages) for arg in ("-e", str(dep.path))]
        timed([python, "-m", "venv", str(venv)], root)
        timed([pip, "install", "-q", "--upgrade", "pip", "setuptools", "wheel"], root)
        timed([pip, "install", "-q", *editables, "-e", f"{package.path}[dev]"], root)
    return time.perf_counter() - started


def locked_specs(root: Path, python: str) -> list[tuple[LockSpec, Path]] | None:
    """Each package's install spec and its lock for `python`'s minor; None if one is missing."""
    minor = minor_of(interpreter_identity(python))
    packages = discover(root)
    locked = []
    for package in packages.values():
        spec = package_spec(package, packages)
        lock = root / lock_path(spec.lock_name, minor).relative_to(REPO)
        if not lock.exists():
            return None
        locked.append((spec, lock))
    return locked


def uv_locked(root: Path, python: str, scratch: Path) -> float | None:
    """`uv venv` + `uv pip install` of each package's lock and local paths; None without a lock."""
    uv_env = scratch / "uv-tool"
    timed([python, "-m", "venv", str(uv_env)], root)
    timed([str(uv_env / "bin" / "pip"), "install", "-q", "uv"], root)
    uv = str(uv_env / "bin" / "uv")
    locked = locked_specs(root, python)
    if locked is None:
        return None
    started = time.perf_counter()
    for spec, lock in locked:
        venv = spec.venv
        timed([uv, "venv", "-q", "--python", python, str(venv)], root)
        target = ["--python", str(venv / "bin" / "python")]
        timed(
            [uv, "pip", "install", "-q", *target, "--no-deps", "--require-hashes", "-r", str(lock)],
            root,
        )
        editables = [arg for path, extras in spec.editables for arg in ("-e", f"{path}{extras}")]
        timed([uv, "pip", "install", "-q", *target, "--no-deps", *editables], root)
    return time.perf_counter() - started


def pip_locked(root: Path, python: str) -> float | None:
    """Bare pip on the locked set of `uv_locked`, one package after another; None without a lock.

    The fastest pip call there is: no pip in the venv, no byte-compiling, no resolver, no
    build isolation. What pip cannot go below here.
    """
    pip = [str(root / ".venv" / "bin" / "python"), "-m", "pip"]
    locked = locked_specs(root, python)
    if locked is None:
        return None
    started = time.perf_counter()
    for spec, lock in locked:
        venv = spec.venv
        timed([python, "-m", "venv", "--without-pip", str(venv)], root)
        fast = [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile"]
        timed([*fast, "--no-deps", "--require-hashes", "-r", str(lock)], root)
        editables = [arg for path, extras in spec.editables for arg in ("-e", f"{path}{extras}")]
        timed([*fast, "--no-deps", "--no-build-isolation", *editables], root)
    return time.perf_counter() - started


def main() -> int:
    """Run the measurements and print them with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", help="interpreter to pass as PYTHON= (default: none)")
    parser.add_argument("--skip-tests", action="store_true", help="installs only")
    args = parser.parse_args()
    make = ["make", *([f"PYTHON={args.python}"] if args.python else [])]
    python = args.python or "python3"
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        ours, theirs = Path(tmp) / "ours", Path(tmp) / "naive"
        copy_repo(ours)
        copy_repo(theirs)
        timed([*make, "tools"], ours)  # the tools env is not part of the comparison
        cold, output = timed_output([*make, "install"], ours)
        rows.append(("make install, cold (packages, locked)", cold))
        breakdown = where_time_goes(output)
        # The median of five: one run of a ~50 ms command is mostly the machine's noise.
        noops = sorted(timed(["make", "install"], ours) for _ in range(5))
        rows.append(("make install, nothing changed (median of 5)", noops[2]))
        package_venvs(ours)
        uv = uv_locked(ours, python, Path(tmp))
        if uv is not None:
            rows.append(("uv pip install, same locked set (reference)", uv))
        package_venvs(ours)
        floor = pip_locked(ours, python)
        if floor is not None:
            rows.append(("bare pip, same locked set, serial (pip's floor)", floor))
        rows.append(("naive serial loop (reference)", naive_loop(theirs, python)))
        if not args.skip_tests:
            timed([*make, "install"], ours)
            rows.append(("make test (fast loop)", timed([*make, "test"], ours)))
            rows.append(("make test-all (SLOW=1, what CI adds)", timed([*make, "test-all"], ours)))
    width = max(len(name) for name, _ in rows)
    print(f"install and test-loop benchmark (PYTHON={args.python or ''}; warm pip cache; one run)")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.2f} s")
    jobs = os.environ.get("JOBS") or os.cpu_count()
    print(f"  where the cold install's time goes (package venvs side by side, JOBS={jobs}):")
    for line in breakdown:
        print(f"    {line}")
    figures = dict(rows)
    cold = figures["make install, cold (packages, locked)"]
    if uv is not None:
        print(f"  cold make install / uv: {cold / uv:.2f}x (goal: <= 2x)")
    if uv is not None and floor is not None:
        print(
            f"  pip's floor / uv: {floor / uv:.2f}x (serial); cold make install / pip's floor: "
            f"{cold / floor:.2f}x (make runs JOBS venvs side by side)"
        )
    serial = figures["naive serial loop (reference)"]
    print(f"  naive loop / cold make install: {serial / cold:.2f}x")
    noop = figures["make install, nothing changed (median of 5)"]
    print(f"  no-op goal <= 0.1 s: {'met' if noop <= 0.1 else 'NOT MET'} ({noop:.3f} s)")
    if "make test (fast loop)" in figures:
        loop = figures["make test (fast loop)"]
        print(f"  make test goal <= 180 s: {'met' if loop <= 180 else 'NOT MET'} ({loop:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
