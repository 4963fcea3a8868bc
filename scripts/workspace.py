#!/usr/bin/env python3
"""The build machinery's command line (the Makefiles call it; the logic is in monorepo/).

Only the standard library is imported at start-up: ``install-tools`` runs on the bare
interpreter the user picked.
"""

from __future__ import annotations

import argparse
import sys

from monorepo import venvs
from monorepo.affected import affected
from monorepo.checks import check
from monorepo.contracts import lint_imports
from monorepo.locks import docs_spec, lock_all, package_spec, tools_spec
from monorepo.packages import WorkspaceError, discover, find_package


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for new venvs")
    parser.add_argument("--verbose", action="store_true", help="show pip's full output")
    parser.add_argument("--unlocked", action="store_true", help="ignore the lock (LOCKED=0)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="dependency graph, single configuration, lock drift")
    sub.add_parser("install-tools", help="build the root tools environment (.venv)")
    sub.add_parser("install-docs", help="build docs/.venv (Sphinx and every package, editable)")
    sub.add_parser("lint-imports", help="the import rules between packages (import-linter)")
    install = sub.add_parser("install", help="build PACKAGE/.venv")
    install.add_argument("package")
    install.add_argument("--extra", action="append", default=[], help="e.g. engines")
    locking = sub.add_parser("lock", help="write locks/py3.X/*.txt for every Python here")
    locking.add_argument("--upgrade", nargs="?", const="", default=None, help="all, or one name")
    sub.add_parser(
        "affected", help="members a change since the git ref SINCE reaches"
    ).add_argument("since")
    args = parser.parse_args(argv)
    options = venvs.Options(args.python, quiet=not args.verbose, locked=not args.unlocked)
    try:
        if args.command == "install-tools":  # runs on the bare interpreter: no TOML parsing
            venvs.install(tools_spec(), options)
            return 0
        packages = discover()
        if args.command == "install":
            package = find_package(args.package, packages)
            venvs.install(package_spec(package, packages, tuple(args.extra)), options)
        elif args.command == "lint-imports":
            return lint_imports(packages)
        elif args.command == "install-docs":
            venvs.install(docs_spec(packages), options)
        elif args.command == "lock":
            lock_all(None if args.upgrade is None else [args.upgrade] if args.upgrade else [])
        elif args.command == "affected":
            chosen = affected(args.since, packages)
            for member, reason in chosen.items():
                print(f"SINCE={args.since}: {member} ({reason})", file=sys.stderr)
            print(" ".join(chosen))
            if not chosen:
                print(f"SINCE={args.since}: no package loop covers the change", file=sys.stderr)
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
