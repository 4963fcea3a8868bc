"""Build the production images (`make images`) and print each one's size over the base image.

The package's version and the short git revision go in as build arguments, so the labels and
the /v1/health answer name the same code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from monorepo.packages import ROOT, load_toml

SERVICES = {"sts-service": "apps/sts-service", "stream-worker": "apps/stream-worker"}
BASE_IMAGE = "python:3.12-slim"  # the Dockerfiles' default PYTHON_VERSION (a test compares)
#: What `make images` may add on top of the base image for the echo variant, in bytes.
SIZE_BUDGET_BYTES = 100_000_000


@dataclass(frozen=True)
class Built:
    """A built image: its tag, version, revision and size over the base image."""

    tag: str
    version: str
    git_revision: str
    added_bytes: int


def project(service: str) -> dict[str, Any]:
    """The [project] table of the service's pyproject.toml."""
    table: dict[str, Any] = load_toml(ROOT / SERVICES[service] / "pyproject.toml")["project"]
    return table


def output(*command: str) -> str:
    """What `command` prints, run at the repo root (CalledProcessError when it fails)."""
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def build(service: str, *, sts_extras: str = "", tag_suffix: str = "") -> Built:
    """Build one production image; raises CalledProcessError with docker's output on failure."""
    version = str(project(service)["version"])
    try:  # the short revision, the same form shared_utils.buildinfo reports
        revision = output("git", "rev-parse", "--short", "HEAD").strip()
    except subprocess.CalledProcessError:
        revision = "unknown"
    tag = f"live-dubbing/{service}:{version}{'-' + sts_extras if sts_extras else ''}{tag_suffix}"
    args = [f"VERSION={version}", f"GIT_REVISION={revision}"]
    args += [f"EXTRAS={sts_extras}"] if sts_extras else []
    build_args = [part for arg in args for part in ("--build-arg", arg)]
    dockerfile = f"infra/{service}.prod.Dockerfile"
    output("docker", "build", "--quiet", "-f", dockerfile, "-t", tag, *build_args, ".")
    tag_size, base_size = (
        int(output("docker", "image", "inspect", "--format", "{{.Size}}", image))
        for image in (tag, BASE_IMAGE)
    )
    return Built(tag, version, revision, tag_size - base_size)


def main(argv: list[str] | None = None) -> int:
    """Build the selected images and print their sizes; 1 when a build fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=sorted(SERVICES), action="append")
    parser.add_argument("--extras", default="", help="e.g. engines (sts-service only)")
    args = parser.parse_args(argv)
    for service in args.service or sorted(SERVICES):
        extras = args.extras if service == "sts-service" else ""
        try:
            built = build(service, sts_extras=extras)
        except subprocess.CalledProcessError as exc:
            print(f"images: {service}: failed:\n{exc.stdout}{exc.stderr}", file=sys.stderr)
            return 1
        budget = "" if extras else f" (budget {SIZE_BUDGET_BYTES / 1e6:.0f} MB)"
        print(
            f"images: {built.tag} (revision {built.git_revision}): "
            f"{built.added_bytes / 1e6:.1f} MB over {BASE_IMAGE}{budget}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
