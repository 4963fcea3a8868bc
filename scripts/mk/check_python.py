# Checks the interpreter chosen with PYTHON=... before any venv is built, and records which one
# it is (a change rebuilds the venvs: scripts/mk/common.mk). Runs on any Python, even 2.7, so
# that it can say what is wrong.
import os
import sys

MINIMUM = (3, 10)


def main():
    if sys.version_info[:2] < MINIMUM:
        sys.stderr.write(
            "error: %s is Python %d.%d; this repo needs Python >= %d.%d.\n"
            "       Re-run with a newer interpreter, e.g. `make install PYTHON=python3.12`.\n"
            % ((sys.executable,) + tuple(sys.version_info[:2]) + MINIMUM)
        )
        return 1
    try:
        import venv  # noqa: F401  (probe only: Debian ships venv separately)
    except ImportError:
        sys.stderr.write(
            "error: %s has no `venv` module.\n"
            "       On Debian/Ubuntu: `apt-get install python3-venv` (or python3.X-venv).\n"
            % sys.executable
        )
        return 1
    identity = "%s %s\n" % (os.path.realpath(sys.executable), sys.version.split()[0])
    path = sys.argv[1]  # where it is recorded: .make/python-id
    if not os.path.exists(path) or open(path).read() != identity:  # its mtime counts
        if not os.path.isdir(os.path.dirname(path) or "."):
            os.makedirs(os.path.dirname(path))
        with open(path + ".tmp", "w") as handle:
            handle.write(identity)
        os.rename(path + ".tmp", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
