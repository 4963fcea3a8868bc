"""The backend registries: one line per engine, chosen by the `STS_*_BACKEND` settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import (
    ASRBackend,
    Backend,
    EngineOptions,
    StageName,
    TranslationBackend,
    TTSBackend,
)
from sts_service.backends.echo import EchoASR, EchoTranslator, EchoTTS
from sts_service.backends.espeak import EspeakTTS
from sts_service.backends.fault_injection import FaultSettings, faulty
from sts_service.backends.pico import PicoTTS
from sts_service.backends.whisper import WhisperASR

if TYPE_CHECKING:  # the pipeline module imports this package's stage interfaces
    from sts_service.pipeline import Pipeline

B = TypeVar("B", bound=Backend)


class BackendRegistry(Generic[B]):
    """Backend factories of one stage, by name.

    Example:
        >>> ASR_BACKENDS.create("echo").transcribe.__qualname__
        'EchoASR.transcribe'
    """

    def __init__(
        self, stage: StageName, factories: Mapping[str, Callable[[EngineOptions], B]]
    ) -> None:
        self.stage = stage
        self._factories: dict[str, Callable[[EngineOptions], B]] = dict(factories)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def register(self, name: str, factory: Callable[[EngineOptions], B]) -> None:
        """Add a backend at run time (plugins, tests). Re-registering a name replaces it."""
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Remove a backend registered with `register` (no error if absent)."""
        self._factories.pop(name, None)

    def check(self, name: str) -> str:
        """Return `name` if registered.

        Raises:
            ValueError: naming the stage, the unknown name and the registered ones.
        """
        if name not in self._factories:
            raise ValueError(
                f"unknown {self.stage} backend {name!r}; registered: {', '.join(self.names())}"
            )
        return name

    def create(self, name: str, options: EngineOptions | None = None) -> B:
        """Instantiate the backend registered as `name`; its `name` is set to the registry name.

        Args:
            name: The registry name.
            options: Engine settings passed to the backend (default: `EngineOptions()`).

        Raises:
            ValueError: if `name` is not registered.
        """
        backend = self._factories[self.check(name)](options or EngineOptions())
        backend.name = name
        return backend


#: The registries: one line per engine.
ASR_BACKENDS: BackendRegistry[ASRBackend] = BackendRegistry(
    "asr",
    {
        "echo": EchoASR,
        "whisper": WhisperASR,
    },
)
TRANSLATION_BACKENDS: BackendRegistry[TranslationBackend] = BackendRegistry(
    "translation",
    {
        "echo": EchoTranslator,
        "apertium": ApertiumTranslator,
    },
)
TTS_BACKENDS: BackendRegistry[TTSBackend] = BackendRegistry(
    "tts",
    {
        "echo": EchoTTS,
        "espeak": EspeakTTS,
        "pico": PicoTTS,
    },
)


def build_pipeline(
    asr: str = "echo",
    translation: str = "echo",
    tts: str = "echo",
    faults: FaultSettings | None = None,
    options: EngineOptions | None = None,
) -> Pipeline:
    """A pipeline of registered backends, wrapped in `faulty` when `faults` is given.

    The backends are created, not loaded: `Pipeline.load` (run at start-up) loads them.

    Raises:
        ValueError: if a name is not registered.
    """
    # Imported here: the pipeline module imports this package's stage interfaces.
    from sts_service.pipeline import Pipeline

    pipeline = Pipeline(
        ASR_BACKENDS.create(asr, options),
        TRANSLATION_BACKENDS.create(translation, options),
        TTS_BACKENDS.create(tts, options),
    )
    return faulty(pipeline, faults) if faults is not None else pipeline
