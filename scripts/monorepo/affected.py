"""`SINCE=<git ref>`: the packages a change reaches, and why.

A package is affected when a file in it changed, or when a local library it depends on
(directly or not) is affected. A change to what every package shares -- root configuration,
the Makefiles and their fragments, the installer, the lock -- affects everything.
"""

from __future__ import annotations

import subprocess

from monorepo.packages import ROOT, Package, WorkspaceError, dependents

# Paths (prefixes) whose change reaches every package.
SHARED = (
    "pyproject.toml",
    "Makefile",
    "scripts/mk/",
    "scripts/monorepo/",
    "scripts/workspace.py",
    "locks/",
)


def changed_files(since: str) -> list[str]:
    """Files changed between `since` and the working tree (committed or not)."""
    command = ["git", "diff", "--name-only", since, "--"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WorkspaceError(f"SINCE={since}: git diff failed: {done.stderr.strip()}")
    untracked = ["git", "ls-files", "--others", "--exclude-standard"]
    extra = subprocess.run(untracked, cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(set(done.stdout.split()) | set(extra.stdout.split()))


def affected(since: str, packages: dict[str, Package]) -> dict[str, str]:
    """{package folder: reason}, in the order of `packages`; the scripts/ member included."""
    files = changed_files(since)
    shared = [f for f in files if f.startswith(SHARED) or f == "scripts/Makefile"]
    if shared:
        reason = f"shared build file changed: {shared[0]}"
        return {**{p.rel: reason for p in packages.values()}, "scripts": reason}
    reasons: dict[str, str] = {}
    for package in packages.values():
        if any(f.startswith(package.rel + "/") for f in files):
            reasons.setdefault(package.rel, "changed")
            for user in dependents(package, packages):
                reasons.setdefault(user.rel, f"depends on {package.rel}")
    if any(f.startswith(("scripts/", ".specify/", ".schemas/", "docs/")) for f in files):
        reasons["scripts"] = "changed"
    order = [p.rel for p in packages.values()] + ["scripts"]
    return {rel: reasons[rel] for rel in order if rel in reasons}
