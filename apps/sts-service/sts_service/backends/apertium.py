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

import functools
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
from shared_utils.languages import iso639_1
from sts_service.backends.base import (
    BackendError,
    BackendState,
    EngineOptions,
    Fragment,
    SyncTranslationBackend,
)
from sts_service.backends.glossary import Glossary, describe, glossary_for, load_glossaries

logger = logging.getLogger(__name__)

#: A mode named like ``eng-spa`` or ``fr-es``: one direction, no variant (``_valencia``).
_PLAIN_MODE = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
#: Third languages tried, best first, when no pair joins two languages directly.
PIVOTS = ("en", "es", "ca", "fr", "pt", "it")

#: Characters with a meaning in Apertium's stream format; escaped in the input.
_RESERVED = re.compile(r"([\\^$/<>\[\]{}@*#])")
#: Marks of unknown (``*``), untranslated (``@``) and ungenerated (``#``) words.
_MARKS = re.compile(r"(?<![\w\\])[*@#](?=\w)")
_ESCAPED = re.compile(r"\\(.)")
_SPACES = re.compile(r"\s+")
#: The made-up word standing for a glossary term (`placeholder`), with its unknown-word mark.
_PLACEHOLDER_PREFIX = "Zqxgls"
_PLACEHOLDER = re.compile(rf"[*@#]?{_PLACEHOLDER_PREFIX}([a-z]+)(?![a-z])", re.IGNORECASE)
#: Longest the first translation of a pair may take at start-up (it loads the dictionaries).
WARM_UP_TIMEOUT_S = 60.0


def installed_pairs(modes_dir: Path) -> list[str]:
    """The pairs whose mode file is installed, sorted (``eng-spa``, ``spa-eng``, ...)."""
    if not modes_dir.is_dir():
        return []
    return sorted(path.stem for path in modes_dir.glob("*.mode"))


def directions(modes_dir: Path) -> dict[tuple[str, str], str]:
    """The installed one-step directions, as contract tags, and the pair doing each.

    Apertium names pairs with two-letter (``fr-es``) or three-letter (``eng-spa``) codes; both
    map to the contract's tags through the one ISO 639 table. Variants (``spa-cat_valencia``)
    are left out, and so is a pair whose mode names a program or a file that is not there
    (`unusable_pairs`).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("eng-spa", "fr-es", "spa-cat_valencia"):
        ...     _ = (folder / f"{name}.mode").write_text("cat")
        >>> _ = (folder / "es-eo.mode").write_text("cat /absent/es-eo.automorf.bin")
        >>> directions(folder)
        {('en', 'es'): 'eng-spa', ('fr', 'es'): 'fr-es'}
    """
    return _scan(modes_dir)[0]


def unusable_pairs(modes_dir: Path) -> dict[str, list[str]]:
    """The installed pairs that cannot run, each with what its mode names and is missing.

    Debian's apertium-eo-es and apertium-eo-ca install ``es-eo.mode`` and ``ca-eo.mode``
    pointing at data folders (``apertium-eo-es/``) that the packages name the other way round
    (``apertium-es-eo/``): the first stage exits at once, and writing to it raised
    BrokenPipeError, in any pivot route through them too.
    """
    return _scan(modes_dir)[1]


def missing_files(commands: list[list[str]]) -> list[str]:
    """The programs (not on PATH) and absolute file arguments (absent) of stage commands."""
    missing: list[str] = []
    for argv in commands:
        if shutil.which(argv[0]) is None:
            missing.append(argv[0])
        missing.extend(arg for arg in argv[1:] if arg.startswith("/") and not Path(arg).exists())
    return missing


def _scan(modes_dir: Path) -> tuple[dict[tuple[str, str], str], dict[str, list[str]]]:
    # Reading every mode and checking its files takes milliseconds: done again only when the
    # folder changes (a pair installed or removed), not on every translation.
    try:
        stamp = modes_dir.stat().st_mtime_ns
    except OSError:
        stamp = -1
    return _scan_cached(modes_dir, stamp)


@functools.lru_cache(maxsize=8)
def _scan_cached(
    modes_dir: Path, stamp: int
) -> tuple[dict[tuple[str, str], str], dict[str, list[str]]]:
    found: dict[tuple[str, str], str] = {}
    unusable: dict[str, list[str]] = {}
    for pair in installed_pairs(modes_dir):
        match = _PLAIN_MODE.match(pair)
        if not match:
            continue
        missing = missing_files(mode_commands(modes_dir / f"{pair}.mode"))
        if missing:
            unusable[pair] = missing
            continue
        found.setdefault((iso639_1(match[1]), iso639_1(match[2])), pair)
    return found, unusable


def route(source: str, target: str, known: dict[tuple[str, str], str]) -> list[str] | None:
    """The pairs that translate `source` -> `target`: one, two through a pivot, or None.

    Example:
        >>> route("en", "pt-BR", {("en", "es"): "eng-spa", ("es", "pt"): "es-pt"})
        ['eng-spa', 'es-pt']
    """
    src, tgt = iso639_1(source), iso639_1(target)
    if (src, tgt) in known:
        return [known[(src, tgt)]]
    middles = [*PIVOTS, *sorted({b for _, b in known})]
    for middle in dict.fromkeys(middles):
        if (src, middle) in known and (middle, tgt) in known:
            return [known[(src, middle)], known[(middle, tgt)]]
    return None


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


def placeholder(index: int) -> str:
    """The made-up word standing for glossary term `index` while Apertium translates.

    Example:
        >>> placeholder(0), placeholder(27)
        ('Zqxglsa', 'Zqxglsbb')
    """
    letters = ""
    while True:
        index, digit = divmod(index, 26)
        letters = chr(ord("a") + digit) + letters
        if not index:
            return _PLACEHOLDER_PREFIX + letters


def to_stream(parts: list[str | int]) -> str:
    r"""Text pieces, escaped, with each glossary term index as its `placeholder` word.

    Apertium does not know the placeholder, so it copies it through unchanged, and it still
    takes a word's place in the sentence: the verb after it agrees as after a name ("Zqxglsa
    dijo", where a superblank left "dicho"). The target term replaces it afterwards
    (`from_stream`).

    Example:
        >>> to_stream(["said  ", 0, " [sic]."])
        'said Zqxglsa \\[sic\\].'
    """
    return "".join(
        _RESERVED.sub(r"\\\1", _SPACES.sub(" ", part))
        if isinstance(part, str)
        else placeholder(part)
        for part in parts
    ).strip()


def from_stream(output: str) -> list[str | int]:
    r"""Apertium's output cut back into cleaned text pieces and glossary term indexes.

    Example:
        >>> from_stream("dijo *Zqxglsa *Smith \\[sic\\].")
        ['dijo ', 0, ' Smith [sic].']
    """
    pieces = _PLACEHOLDER.split(output)
    parts: list[str | int] = []
    for number, piece in enumerate(pieces):
        if number % 2:
            index = 0
            for letter in piece.lower():
                index = index * 26 + ord(letter) - ord("a")
            parts.append(index)
        elif piece:
            parts.append(_ESCAPED.sub(r"\1", _MARKS.sub("", piece)))
    return parts


def keep_case_after_terms(source: list[str | int], output: list[str | int]) -> list[str | int]:
    """`output` with the word after each term lower-cased where the source's was lower case.

    Apertium capitalises the word after an unknown word that opens a sentence, and a
    placeholder is unknown: "Zqxglsa said" came back "Zqxglsa Dijo".

    Example:
        >>> keep_case_after_terms([0, " said so."], [0, " Dijo así."])
        [0, ' dijo así.']
    """
    following = {
        part: source[number + 1]
        for number, part in enumerate(source[:-1])
        if isinstance(part, int) and isinstance(source[number + 1], str)
    }
    fixed = list(output)
    for number, part in enumerate(output[:-1]):
        after = output[number + 1]
        was = following.get(part) if isinstance(part, int) else None
        if not isinstance(after, str) or not isinstance(was, str):
            continue
        first_was = was.lstrip()[:1]
        stripped = after.lstrip()
        if first_was.islower() and stripped[:1].isupper():
            start = len(after) - len(stripped)
            fixed[number + 1] = after[:start] + stripped[0].lower() + stripped[1:]
    return fixed


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
        #: Whether a translation went through since the last start (dictionaries loaded).
        self.warmed = False

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
        self.warmed = False
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
        """Translate one plain text (`translate_stream` of it, escaped)."""
        return self.translate_stream(escape(text), timeout_s)

    def translate_stream(self, stream: str, timeout_s: float | None = None) -> str:
        """Translate one line of Apertium stream format; restarts the stages if one died.

        Args:
            stream: The input, escaped (`escape`, `to_stream`), on one line.
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
            # The first translation loads the pair's dictionaries (~2 s, far more on a busy
            # machine): it gets room for that.
            wait_s = timeout_s or (self.timeout_s if self.warmed else WARM_UP_TIMEOUT_S)
            try:
                data = stream.encode("utf-8") + b"\n\0"
                answer = self._exchange(data, wait_s)
            except (OSError, TimeoutError):
                self.stop()
                raise
            self.warmed = True
            return answer

    def warm(self) -> None:
        """Start the stages and load the dictionaries now, with one translation."""
        self.translate("Hello.", timeout_s=WARM_UP_TIMEOUT_S)

    def reap(self) -> bool:
        """If a stage died, kill and reap every stage now; True when that happened.

        Without this, a dead stage stays a zombie, and its pair looks running, until the
        next translation of the pair. A pipeline busy translating is left to that call.
        """
        if not self.processes or not self._lock.acquire(blocking=False):
            return False
        try:
            if not self.processes or self.alive():
                return False
            self.restarts += 1
            logger.warning("apertium pipeline died; reaped its stages, restarting on next use")
            self.stop()
            return True
        finally:
            self._lock.release()

    def _exchange(self, data: bytes, timeout_s: float) -> str:
        first, last = self.processes[0], self.processes[-1]
        assert first.stdin is not None and last.stdout is not None  # both are pipes
        try:
            first.stdin.write(data)
            first.stdin.flush()
        except BrokenPipeError:
            first.wait()
            raise OSError(
                f"the apertium stage {self.commands[0][0]} exited (status {first.returncode}) "
                "before reading its input"
            ) from None
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
    """Translation with a kept Apertium pipeline per language pair, pivoting where needed."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.modes_dir = Path(self.options.apertium_modes_dir)
        self._pipelines: dict[str, ApertiumPipeline] = {}
        self._lock = threading.Lock()
        self.glossaries: dict[tuple[str, str], Glossary] = {}

    def needs_loading(self) -> bool:
        """The programs and at least one pair are checked, and the pairs warmed, at start-up."""
        return True

    def load(self) -> None:
        """Check Apertium and its pairs; start and warm the `apertium_preload` directions.

        The other directions start on their first use.
        """
        self.glossaries = load_glossaries(self.options.glossary_dir)
        if shutil.which("lt-proc") is None:
            raise RuntimeError(
                "Apertium is not installed (no lt-proc on PATH); "
                "install it as root: make install-engines-system"
            )
        known = directions(self.modes_dir)
        if not known:
            raise RuntimeError(
                f"no Apertium language pair in {self.modes_dir}; "
                "install one as root, e.g. apt-get install apertium-eng-spa"
            )
        for pair, missing in unusable_pairs(self.modes_dir).items():
            logger.warning(
                "apertium pair %s left out: its mode names what is not installed: %s",
                pair,
                ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else ""),
            )
        for direction in self.options.apertium_preload.split(","):
            source, _, target = direction.strip().partition("-")
            pairs = route(source, target, known) if source and target else None
            for pair in pairs or []:
                self._pipeline(pair).warm()

    def close(self) -> None:
        """Stop every running pipeline."""
        with self._lock:
            for pipeline in self._pipelines.values():
                pipeline.stop()
            self._pipelines.clear()

    def health(self) -> BackendState:
        """Available; the detail lists the directions, and the pairs whose stages died.

        A pipeline found dead here is reaped at once (its processes killed and waited for),
        so no zombie is left until the next translation of that pair.
        """
        with self._lock:
            pipelines = dict(self._pipelines)
        down = [
            pair
            for pair, pipeline in sorted(pipelines.items())
            if pipeline.reap() or not pipeline.processes
        ]
        known = directions(self.modes_dir)
        detail = "directions: " + ", ".join(f"{a}-{b}" for a, b in sorted(known))
        detail += "; others through a pivot language"
        restarts = sum(p.restarts for p in pipelines.values())
        if restarts:
            detail += f"; restarts: {restarts}"
        unusable = unusable_pairs(self.modes_dir)
        if unusable:
            detail += "; unusable (files missing): " + ", ".join(unusable)
        if self.glossaries:
            detail += "; glossaries: " + describe(self.glossaries)
        if down:
            detail += f"; stopped (died or timed out), restarting on next use: {', '.join(down)}"
        return BackendState(bool(known), detail)

    def can_translate(self, source: str, target: str) -> bool:
        """Whether `source` -> `target` is installed, directly or through one pivot."""
        return route(source, target, directions(self.modes_dir)) is not None

    def _pipeline(self, pair: str) -> ApertiumPipeline:
        with self._lock:
            pipeline = self._pipelines.get(pair)
            if pipeline is None:
                commands = mode_commands(self.modes_dir / f"{pair}.mode")
                pipeline = ApertiumPipeline(commands, self.options.apertium_timeout_s)
                self._pipelines[pair] = pipeline
            return pipeline

    def translate_sync(self, text: str, fragment: Fragment) -> str:
        """Translate `text`, through a pivot language when no pair is direct; empty stays empty.

        Raises:
            BackendError: INVALID_REQUEST (not retryable) for a direction that is not
                installed, even through a pivot, naming the installed ones.
        """
        known = directions(self.modes_dir)
        pairs = route(fragment.source_language, fragment.target_language, known)
        if pairs is None:
            raise BackendError(
                ErrorCode.INVALID_REQUEST,
                f"language pair {fragment.source_language} -> {fragment.target_language} "
                f"is not installed, even through a pivot; installed: "
                f"{', '.join(f'{a}-{b}' for a, b in sorted(known)) or 'none'}",
            )
        if len(pairs) > 1:
            logger.info(
                "fragment %s: %s -> %s through a pivot: %s",
                fragment.fragment_id,
                fragment.source_language,
                fragment.target_language,
                " then ".join(pairs),
                extra={"fragment_id": fragment.fragment_id, "apertium_pairs": pairs},
            )
        if not text.strip():
            return ""
        glossary = glossary_for(self.glossaries, fragment.source_language, fragment.target_language)
        if glossary is None:
            for pair in pairs:
                text = clean(self._pipeline(pair).translate(text))
            return text
        # Each glossary term rides through every pair as a placeholder word, then its target
        # term takes its place: Apertium never sees (nor mistranslates) the name.
        source_parts = glossary.split(text)
        parts = source_parts
        for pair in pairs:
            parts = from_stream(self._pipeline(pair).translate_stream(to_stream(parts)))
        parts = keep_case_after_terms(source_parts, parts)
        joined = "".join(
            glossary.target_term(part) if isinstance(part, int) else part for part in parts
        )
        return " ".join(joined.split())
