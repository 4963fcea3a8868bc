#!/usr/bin/env python3
"""The build machinery's command line (the Makefiles call it; the logic is in monorepo/).

Commands:
    workspace.py packages                 list package folders
    workspace.py local-deps PKG           transitive local libraries of PKG, in install order
    workspace.py install-tools            build the root tools environment (.venv)
    workspace.py install-docs             build docs/.venv (Sphinx and every package, editable)
    workspace.py install PKG [--extra E]  build PKG/.venv (with its extra E if it declares it)
    workspace.py check                    dependency graph, single configuration, lock drift
    workspace.py lint-imports             the import rules between packages (import-linter)
    workspace.py lock [--upgrade [NAME]]  write locks/py3.X/*.txt for every Python on the machine
    workspace.py affected SINCE           members a change since the git ref SINCE reaches

Only the standard library is imported at start-up: ``install-tools`` runs on the bare
interpreter the user picked.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from monorepo import venvs
from monorepo.affected import affected
from monorepo.checks import check
from monorepo.contracts import lint_imports
from monorepo.locks import (
    LockSpec,
    all_specs,
    compile_lock,
    diff_lines,
    docs_spec,
    lock_env,
    lock_path,
    locked_pins_current,
    package_spec,
    pythons,
    tools_spec,
)
from monorepo.packages import WorkspaceError, discover, find_package, local_deps


def lock(upgrade: list[str] | None) -> None:
    """Compile every venv's lock for every supported Python minor found on this machine."""
    packages = discover()
    found = pythons()
    print(f"locking for Python {', '.join(found)} (other supported minors: not on this machine)")
    # Without --upgrade, a lock whose inputs have not changed would come out the same: skip it.
    jobs = [
        (spec, minor, python)
        for minor, python in found.items()
        for spec in all_specs(packages)
        if upgrade is not None
        or not lock_path(spec.lock_name, minor).exists()
        or not locked_pins_current(spec, lock_path(spec.lock_name, minor))
    ]
    print(f"lock: {len(jobs)} lock(s) to compile" + ("" if jobs else ": every lock is current"))
    envs = {minor: lock_env(python, minor) for minor, python in found.items()}

    def one(job: tuple[LockSpec, str, str]) -> list[str]:
        spec, minor, _ = job
        old, new = compile_lock(spec, envs[minor], minor, upgrade)
        return diff_lines(f"py{minor}/{spec.lock_name}", old, new)

    with ThreadPoolExecutor(max_workers=4) as pool:
        changes = [line for lines in pool.map(one, jobs) for line in lines]
    print("\n".join(changes) if changes else "lock: no version changed")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for new venvs")
    parser.add_argument("--verbose", action="store_true", help="show pip's full output")
    parser.add_argument("--unlocked", action="store_true", help="ignore the lock (LOCKED=0)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("packages", "check", "install-tools", "install-docs", "lint-imports"):
        sub.add_parser(name)
    sub.add_parser("local-deps").add_argument("package")
    install = sub.add_parser("install")
    install.add_argument("package")
    install.add_argument("--extra", action="append", default=[], help="e.g. engines")
    locking = sub.add_parser("lock")
    locking.add_argument("--upgrade", nargs="?", const="", default=None, help="all, or one name")
    sub.add_parser("affected").add_argument("since")
    args = parser.parse_args(argv)
    options = venvs.Options(args.python, quiet=not args.verbose, locked=not args.unlocked)
    try:
        if args.command == "install-tools":  # runs on the bare interpreter: no TOML parsing
            venvs.install_tools(tools_spec(), options)
            return 0
        packages = discover()
        if args.command == "packages":
            print("\n".join(p.rel for p in packages.values()))
        elif args.command == "local-deps":
            package = find_package(args.package, packages)
            print("\n".join(d.rel for d in local_deps(package, packages)))
        elif args.command == "install":
            package = find_package(args.package, packages)
            venvs.install(package_spec(package, packages, tuple(args.extra)), options)
        elif args.command == "lint-imports":
            return lint_imports(packages)
        elif args.command == "install-docs":
            venvs.install(docs_spec(packages), options)
        elif args.command == "lock":
            lock(None if args.upgrade is None else [args.upgrade] if args.upgrade else [])
        elif args.command == "affected":
            chosen = affected(args.since, packages)
            for member, reason in chosen.items():
                print(f"SINCE={args.since}: {member} ({reason})", file=sys.stderr)
            print(" ".join(chosen) if chosen else "")
            if not chosen:
                print(
                    f"SINCE={args.since}: nothing changed that a package loop covers",
                    file=sys.stderr,
                )
        else:
            problems = check(packages)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"workspace OK: {len(packages)} packages")
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
