"""Benchmark installs and the test loop, each beside its reference, in one run on one machine.

Rows (pip's download cache is warm for all; every figure comes from this one run, so the ratios
hold on a noisy shared machine):
* `make install`, cold (every package venv from its lock), and with nothing changed;
* uv: `uv pip install` of the same locked set into fresh venvs (a reference only: uv is put in
  a throwaway venv for the benchmark and is not a dependency of the repo);
* the naive serial loop: per package `python -m venv` with pip, `pip install --upgrade pip
  setuptools wheel`, then the package with build isolation and free resolution (its local
  libraries named by path in the same call, without which it cannot install at all);
* the test loop: root `make test` (no test marked slow) beside `make test-all` (SLOW=1).

Usage: .venv/bin/python scripts/bench/bench_install.py [--python python3] [--skip-tests]
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

from monorepo.locks import lock_path, minor_of, package_spec  # noqa: E402  (beside this script)
from monorepo.packages import discover, local_deps  # noqa: E402
from monorepo.venvs import interpreter_identity  # noqa: E402

# An outer make's variables (and the options of a make started by hand) must not leak in.
OUTER_MAKE = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHON", "SLOW", "SINCE", "LOCKED", "ENGINES"}


def copy_repo(target: Path) -> None:
    """Clone the repo's last commit: no venvs, and the history the scaffold's tests need."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds a command took; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, check=False,
        env={**{k: v for k, v in os.environ.items() if k not in OUTER_MAKE}, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-4000:]}")
    return time.perf_counter() - started


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


def uv_locked(root: Path, python: str, scratch: Path) -> float | None:
    """`uv venv` + `uv pip install` of each package's lock and local paths; None without a lock."""
    uv_env = scratch / "uv-tool"
    timed([python, "-m", "venv", str(uv_env)], root)
    timed([str(uv_env / "bin" / "pip"), "install", "-q", "uv"], root)
    uv = str(uv_env / "bin" / "uv")
    minor = minor_of(interpreter_identity(python))
    packages = discover(root)
    started = time.perf_counter()
    for package in packages.values():
        spec = package_spec(package, packages)
        lock = root / lock_path(spec.lock_name, minor).relative_to(REPO)
        if not lock.exists():
            return None
        venv = package.path / ".venv"
        timed([uv, "venv", "-q", "--python", python, str(venv)], root)
        target = ["--python", str(venv / "bin" / "python")]
        timed(
            [uv, "pip", "install", "-q", *target, "--no-deps", "--require-hashes", "-r", str(lock)],
            root,
        )
        editables = [arg for path, extras in spec.editables for arg in ("-e", f"{path}{extras}")]
        timed([uv, "pip", "install", "-q", *target, "--no-deps", *editables], root)
    return time.perf_counter() - started


def main() -> int:
    """Run the measurements and print them with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="python3")
    parser.add_argument("--skip-tests", action="store_true", help="installs only")
    args = parser.parse_args()
    make = ["make", f"PYTHON={args.python}"]
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        ours, theirs = Path(tmp) / "ours", Path(tmp) / "naive"
        copy_repo(ours)
        copy_repo(theirs)
        timed([*make, "tools"], ours)  # the tools env is not part of the comparison
        rows.append(("make install, cold (packages, locked)", timed([*make, "install"], ours)))
        # The median of five: one run of a ~50 ms command is mostly the machine's noise.
        noops = sorted(timed(["make", "install"], ours) for _ in range(5))
        rows.append(("make install, nothing changed (median of 5)", noops[2]))
        package_venvs(ours)
        uv = uv_locked(ours, args.python, Path(tmp))
        if uv is not None:
            rows.append(("uv pip install, same locked set (reference)", uv))
        rows.append(("naive serial loop (reference)", naive_loop(theirs, args.python)))
        if not args.skip_tests:
            timed([*make, "install"], ours)
            rows.append(("make test (fast loop)", timed([*make, "test"], ours)))
            rows.append(("make test-all (SLOW=1, what CI adds)", timed([*make, "test-all"], ours)))
    width = max(len(name) for name, _ in rows)
    print(f"install and test-loop benchmark (python: {args.python}; warm pip cache; one run)")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.2f} s")
    figures = dict(rows)
    cold = figures["make install, cold (packages, locked)"]
    if uv is not None:
        print(f"  cold make install / uv: {cold / uv:.2f}x (goal: <= 2x)")
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
