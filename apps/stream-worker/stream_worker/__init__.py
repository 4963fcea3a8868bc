"""stream-worker: dubs a live audio stream through sts-service without losing a sample."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stream-worker")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
