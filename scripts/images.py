"""Build the production images (`make images`) with their version and git revision.

Each image is built from infra/<service>.prod.Dockerfile with the repo root as context, the
package's version (its pyproject.toml) and the short git revision as build arguments, so the
image's labels and its /v1/health answer name the same code. It prints each image's tag and
its size over the base image.

    python scripts/images.py [--service sts-service] [--extras engines] [--tag-suffix -x]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = {"sts-service": "apps/sts-service", "stream-worker": "apps/stream-worker"}
BASE_IMAGE = "python:3.12-slim"
#: What `make images` may add on top of the base image for the echo variant, in bytes.
SIZE_BUDGET_BYTES = 100_000_000


@dataclass(frozen=True)
class Built:
    """A built image: its tag, version, revision and size over the base image."""

    service: str
    tag: str
    version: str
    git_revision: str
    added_bytes: int


def package_version(service: str) -> str:
    """The version in the service's pyproject.toml (what its installed metadata reports)."""
    found = re.search(r'^version = "([^"]+)"$', _pyproject(service), re.M)
    if found is None:
        raise ValueError(f"{SERVICES[service]}/pyproject.toml has no static `version = ...`")
    return found.group(1)


def has_extra(service: str, extra: str) -> bool:
    """Whether the service's pyproject.toml declares the optional dependency group `extra`."""
    text = _pyproject(service)
    start = text.find("[project.optional-dependencies]")
    if start < 0:
        return False
    section = text[start:].split("\n[", 1)[0]
    return re.search(rf"^{re.escape(extra)}\s*=", section, re.M) is not None


def _pyproject(service: str) -> str:
    # Parsed with two regular expressions: tomllib is 3.11+, and the tools env may be 3.10.
    return (REPO / SERVICES[service] / "pyproject.toml").read_text("utf-8")


def git_revision() -> str:
    """The short revision of HEAD, the same form shared_utils.buildinfo reports."""
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def image_size(tag: str) -> int:
    """Size of a local image in bytes."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


def build(service: str, *, sts_extras: str = "", tag_suffix: str = "") -> Built:
    """Build one production image; raises CalledProcessError with docker's output on failure."""
    version, revision = package_version(service), git_revision()
    tag = f"live-dubbing/{service}:{version}{'-' + sts_extras if sts_extras else ''}{tag_suffix}"
    command = ["docker", "build", "--quiet", "-f", f"infra/{service}.prod.Dockerfile"]
    command += ["-t", tag, "--build-arg", f"VERSION={version}"]
    command += ["--build-arg", f"GIT_REVISION={revision}"]
    if sts_extras:
        command += ["--build-arg", f"EXTRAS={sts_extras}"]
    subprocess.run([*command, "."], cwd=REPO, check=True, capture_output=True, text=True)
    added = image_size(tag) - image_size(BASE_IMAGE)
    return Built(service, tag, version, revision, added)


def main(argv: list[str] | None = None) -> int:
    """Build the selected images and print their sizes; 1 when a build fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=sorted(SERVICES), action="append")
    parser.add_argument("--extras", default="", help="e.g. engines (sts-service only)")
    parser.add_argument("--tag-suffix", default="", help="appended to every tag")
    args = parser.parse_args(argv)
    for service in args.service or sorted(SERVICES):
        extras = args.extras if service == "sts-service" else ""
        try:
            built = build(service, sts_extras=extras, tag_suffix=args.tag_suffix)
        except subprocess.CalledProcessError as exc:
            print(
                f"images: {service}: docker build failed:\n{exc.stdout}{exc.stderr}",
                file=sys.stderr,
            )
            return 1
        budget = "" if extras else f" (budget {SIZE_BUDGET_BYTES / 1e6:.0f} MB)"
        print(
            f"images: {built.tag} (revision {built.git_revision}): "
            f"{built.added_bytes / 1e6:.1f} MB over {BASE_IMAGE}{budget}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
