"""Benchmark installs and the test loop, each beside its reference, in one run on one machine.

`make install` cold and with nothing changed, beside uv, pip's floor and a naive serial loop on
the same locked set (pip's download cache warm for all), then `make test` beside `make test-all`.
Every figure comes from this one run, so the ratios hold on a noisy shared machine.
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from monorepo.locks import lock_path, minor_of, package_spec  # noqa: E402  (beside this script)
from monorepo.packages import discover, local_deps  # noqa: E402
from monorepo.venvs import interpreter_identity  # noqa: E402

# An outer make's variables (and the options of a make started by hand) must not leak in.
OUTER_MAKE = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHON", "SLOW", "SINCE", "LOCKED", "ENGINES"}


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds a command took, and its output; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, check=False,
        env={k: v for k, v in os.environ.items() if k not in OUTER_MAKE},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-4000:]}")
    return time.perf_counter() - started, done.stdout


def took(command: list[str], cwd: Path) -> float:
    """Seconds a command took; raises if it fails."""
    return timed(command, cwd)[0]


# The installer's summary line: "installed NAME in 12.3 s: venv 0.1 s, lock 10.2 s, ..."
INSTALLED = re.compile(r"^installed (\S+) in ([\d.]+) s: (.*?) \(", re.MULTILINE)


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
        took([python, "-m", "venv", str(venv)], root)
        took([pip, "install", "-q", "--upgrade", "pip", "setuptools", "wheel"], root)
        took([pip, "install", "-q", *editables, "-e", f"{package.path}[dev]"], root)
    return time.perf_counter() - started


def locked_install(
    root: Path, python: str, new_venv: list[str], install: Callable[[Path], list[str]], *flags: str
) -> float | None:
    """Each package's lock, then its local paths (with `flags`), into fresh venvs, serially.

    `new_venv` + a folder makes a venv, `install(venv python)` installs into it. None when a
    package has no lock for `python`'s minor.
    """
    minor = minor_of(interpreter_identity(python))
    packages = discover(root)
    specs = [package_spec(package, packages) for package in packages.values()]
    locks = [root / lock_path(spec.lock_name, minor).relative_to(REPO) for spec in specs]
    if not all(lock.exists() for lock in locks):
        return None
    started = time.perf_counter()
    for spec, lock in zip(specs, locks, strict=True):
        took([*new_venv, str(spec.venv)], root)
        into = install(spec.venv / "bin" / "python")
        took([*into, "--no-deps", "--require-hashes", "-r", str(lock)], root)
        editables = [arg for path, extras in spec.editables for arg in ("-e", f"{path}{extras}")]
        took([*into, "--no-deps", *flags, *editables], root)
    return time.perf_counter() - started


def uv_locked(root: Path, python: str, scratch: Path) -> float | None:
    """`uv venv` + `uv pip install` of the locked set (uv in a throwaway venv of its own)."""
    took([python, "-m", "venv", str(scratch / "uv-tool")], root)
    took([str(scratch / "uv-tool" / "bin" / "pip"), "install", "-q", "uv"], root)
    uv = str(scratch / "uv-tool" / "bin" / "uv")
    return locked_install(
        root, python, [uv, "venv", "-q", "--python", python],
        lambda venv: [uv, "pip", "install", "-q", "--python", str(venv)],
    )  # fmt: skip


def pip_locked(root: Path, python: str) -> float | None:
    """Bare pip on the same locked set, with every shortcut pip has: its floor here.

    No pip in the venv, no byte-compiling, no resolver, no build isolation.
    """
    pip = [str(root / ".venv" / "bin" / "python"), "-m", "pip"]
    return locked_install(
        root, python, [python, "-m", "venv", "--without-pip"],
        lambda venv: [*pip, "--python", str(venv), "install", "-q", "--no-compile"],
        "--no-build-isolation",
    )  # fmt: skip


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
        for copy in (ours, theirs):  # no venvs, and the history the scaffold's tests need
            subprocess.run(["git", "clone", "--quiet", str(REPO), str(copy)], check=True)
        took([*make, "tools"], ours)  # the tools env is not part of the comparison
        cold, output = timed([*make, "install"], ours)
        rows.append(("make install, cold (packages, locked)", cold))
        # The median of five: one run of a ~50 ms command is mostly the machine's noise.
        noops = sorted(took(["make", "install"], ours) for _ in range(5))
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
            took([*make, "install"], ours)
            rows.append(("make test (fast loop)", took([*make, "test"], ours)))
            rows.append(("make test-all (SLOW=1, what CI adds)", took([*make, "test-all"], ours)))
    width = max(len(name) for name, _ in rows)
    print(f"install and test-loop benchmark (PYTHON={args.python or ''}; warm pip cache; one run)")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.2f} s")
    jobs = os.environ.get("JOBS") or os.cpu_count()
    print(f"  where the cold install's time goes (package venvs side by side, JOBS={jobs}):")
    for name, total, steps in INSTALLED.findall(output):
        print(f"    {name:<20} {float(total):6.1f} s  ({steps})")
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
