"""MT with Apertium (rule-based, offline; Debian's ``apertium`` and ``apertium-<pair>``).

One pipeline of Apertium processes stays running per language pair. The stages are the ones
the pair's ``<pair>.mode`` file lists, each started with ``-z`` (null-flush): every input ends
with a newline and a NUL byte, and each stage answers it at once, ending its output with a NUL.
Running ``apertium -z <pair>`` as one command instead hangs when fed from a held-open pipe,
and starting the whole chain per call costs 0.25-0.4 s against 2-8 ms for a kept pipeline.

A pipeline that dies, or does not answer within the timeout, is killed and started again on
the next call. Apertium is GPL-2 and runs as separate processes.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from shared_utils.contract import ErrorCode
from sts_service.backends.base import (
    BackendError,
    BackendState,
    EngineOptions,
    Fragment,
    SyncTranslationBackend,
)

logger = logging.getLogger(__name__)

#: Apertium's language codes, by the contract's two-letter codes.
_APERTIUM_CODES = {
    "en": "eng",
    "es": "spa",
    "fr": "fra",
    "ca": "cat",
    "pt": "por",
    "it": "ita",
    "de": "deu",
    "gl": "glg",
    "eu": "eus",
    "oc": "oci",
}

#: Characters with a meaning in Apertium's stream format; escaped in the input.
_RESERVED = re.compile(r"([\\^$/<>\[\]{}@*#])")
#: Marks of unknown (``*``), untranslated (``@``) and ungenerated (``#``) words.
_MARKS = re.compile(r"(?<![\w\\])[*@#](?=\w)")
_ESCAPED = re.compile(r"\\(.)")
#: Longest the first translation of a pair may take at start-up (it loads the dictionaries).
WARM_UP_TIMEOUT_S = 60.0


def pair_name(source: str, target: str) -> str:
    """Apertium's pair name, e.g. ``eng-spa`` for ``en`` -> ``es``.

    Example:
        >>> pair_name("en", "es-419")
        'eng-spa'
    """
    codes = [
        _APERTIUM_CODES.get(lang.split("-")[0], lang.split("-")[0]) for lang in (source, target)
    ]
    return f"{codes[0]}-{codes[1]}"


def installed_pairs(modes_dir: Path) -> list[str]:
    """The pairs whose mode file is installed, sorted (``eng-spa``, ``spa-eng``, ...)."""
    if not modes_dir.is_dir():
        return []
    return sorted(path.stem for path in modes_dir.glob("*.mode"))


def mode_commands(mode_file: Path) -> list[list[str]]:
    """The stage commands of a mode file, each with ``-z`` added after the program name.

    ``$1`` (generation) becomes ``-n``, no unknown-word marks; ``$2`` (tagger options) is
    dropped, as the ``apertium`` script does by default.
    """
    text = mode_file.read_text(encoding="utf-8").strip()
    commands: list[list[str]] = []
    for part in text.split("|"):
        argv = [arg for arg in shlex.split(part.replace("$1", "-n").replace("$2", "")) if arg]
        if not argv:
            continue
        commands.append([argv[0], "-z", *argv[1:]])
    return commands


def escape(text: str) -> str:
    r"""Escape Apertium's reserved characters, on one line.

    Example:
        >>> escape("a [b] 3/4\nc")
        'a \\[b\\] 3\\/4 c'
    """
    return _RESERVED.sub(r"\\\1", " ".join(text.split()))


def clean(output: str) -> str:
    r"""Strip the word marks and escapes from Apertium's output.

    Example:
        >>> clean("El *Smith dijo \\[hola\\]\n")
        'El Smith dijo [hola]'
    """
    return _ESCAPED.sub(r"\1", _MARKS.sub("", output)).strip()


class ApertiumPipeline:
    """The running stages of one language pair; one translation at a time.

    Args:
        commands: The stage commands (`mode_commands`).
        timeout_s: Longest one translation may take.
    """

    def __init__(self, commands: list[list[str]], timeout_s: float) -> None:
        self.commands = commands
        self.timeout_s = timeout_s
        self.processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self.restarts = 0

    def start(self) -> None:
        """Start the stages, each reading the previous one's output."""
        upstream = None
        for argv in self.commands:
            process = subprocess.Popen(
                argv,
                stdin=upstream if upstream is not None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            if upstream is not None:
                upstream.close()  # the child holds it now; EOF then travels down the chain
            upstream = process.stdout
            self.processes.append(process)

    def alive(self) -> bool:
        """Whether every stage is still running."""
        return bool(self.processes) and all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        """Kill every stage and reap it."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        self.processes = []

    def translate(self, text: str, timeout_s: float | None = None) -> str:
        """Translate one text; restarts the stages first if one died.

        Args:
            text: The text.
            timeout_s: Longest wait for the answer (default: the pipeline's `timeout_s`).

        Raises:
            TimeoutError: no answer within `timeout_s` (the stages are then killed).
            OSError: the stages died during the call (they are then killed).
        """
        with self._lock:
            if not self.alive():
                if self.processes:
                    self.restarts += 1
                    logger.warning("apertium pipeline died; restarting it")
                self.stop()
                self.start()
            try:
                data = escape(text).encode("utf-8") + b"\n\0"
                return self._exchange(data, timeout_s or self.timeout_s)
            except (OSError, TimeoutError):
                self.stop()
                raise

    def _exchange(self, data: bytes, timeout_s: float) -> str:
        first, last = self.processes[0], self.processes[-1]
        assert first.stdin is not None and last.stdout is not None  # both are pipes
        first.stdin.write(data)
        first.stdin.flush()
        deadline = time.monotonic() + timeout_s
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(last.stdout, selectors.EVENT_READ)
            while b"\0" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"no answer within {timeout_s:g} s")
                chunk = os.read(last.stdout.fileno(), 65536)
                if not chunk:
                    raise OSError("the apertium pipeline closed its output")
                received += chunk
        return received.split(b"\0", 1)[0].decode("utf-8", errors="replace")


class ApertiumTranslator(SyncTranslationBackend):
    """Translation with a kept Apertium pipeline per language pair."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.modes_dir = Path(self.options.apertium_modes_dir)
        self._pipelines: dict[str, ApertiumPipeline] = {}
        self._lock = threading.Lock()

    def needs_loading(self) -> bool:
        """The programs and at least one pair are checked, and the pairs warmed, at start-up."""
        return True

    def load(self) -> None:
        """Check that Apertium and a pair are installed, then start and warm every pair."""
        if shutil.which("lt-proc") is None:
            raise RuntimeError(
                "Apertium is not installed (no lt-proc on PATH); "
                "install it as root: make install-engines-system"
            )
        pairs = installed_pairs(self.modes_dir)
        if not pairs:
            raise RuntimeError(
                f"no Apertium language pair in {self.modes_dir}; "
                "install one as root, e.g. apt-get install apertium-eng-spa"
            )
        for pair in pairs:
            # The first translation loads the pair's dictionaries (~2 s, far more on a busy
            # machine): do it now, with room for that.
            self._pipeline(pair).translate("Hello.", timeout_s=WARM_UP_TIMEOUT_S)

    def close(self) -> None:
        """Stop every running pipeline."""
        with self._lock:
            for pipeline in self._pipelines.values():
                pipeline.stop()
            self._pipelines.clear()

    def health(self) -> BackendState:
        """Available; the detail names the installed pairs and any restarts."""
        restarts = sum(p.restarts for p in self._pipelines.values())
        detail = f"pairs: {', '.join(installed_pairs(self.modes_dir))}"
        return BackendState(True, f"{detail}; restarts: {restarts}" if restarts else detail)

    def _pipeline(self, pair: str) -> ApertiumPipeline:
        with self._lock:
            pipeline = self._pipelines.get(pair)
            if pipeline is None:
                commands = mode_commands(self.modes_dir / f"{pair}.mode")
                pipeline = ApertiumPipeline(commands, self.options.apertium_timeout_s)
                self._pipelines[pair] = pipeline
            return pipeline

    def translate_sync(self, text: str, fragment: Fragment) -> str:
        """Translate `text`; an empty text stays empty.

        Raises:
            BackendError: INVALID_REQUEST (not retryable) for a pair that is not installed,
                naming the installed ones.
        """
        pair = pair_name(fragment.source_language, fragment.target_language)
        pairs = installed_pairs(self.modes_dir)
        if pair not in pairs:
            raise BackendError(
                ErrorCode.INVALID_REQUEST,
                f"language pair {fragment.source_language} -> {fragment.target_language} "
                f"({pair}) is not installed; installed pairs: {', '.join(pairs) or 'none'}",
            )
        if not text.strip():
            return ""
        return clean(self._pipeline(pair).translate(text))
