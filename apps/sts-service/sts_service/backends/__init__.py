"""Pipeline backends: the stage interfaces, the registries, and one module per engine.

* `base`: the stage interfaces (`ASRBackend`, `TranslationBackend`, `TTSBackend` and their
  blocking ``Sync*`` variants) and the values passed between stages.
* `registry`: the registries (name -> class) and `build_pipeline`.
* `echo`: the offline echo backends, the default of every stage.
* `fault_injection`: the `faulty` wrapper around any backends (``STS_FAULT_*``).

Adding an engine is one module here with one class (subclass a stage interface from `base`)
plus one line in the matching registry in `registry`, e.g. ``"whisper": WhisperASR,`` in
`ASR_BACKENDS`; then ``STS_ASR_BACKEND=whisper`` selects it.
"""

from sts_service.backends.echo import EchoASR, EchoTranslator, EchoTTS
from sts_service.backends.fault_injection import FaultyASR, FaultyTTS, faulty
from sts_service.backends.registry import (
    ASR_BACKENDS,
    TRANSLATION_BACKENDS,
    TTS_BACKENDS,
    BackendRegistry,
    build_pipeline,
)

__all__ = [
    "ASR_BACKENDS",
    "TRANSLATION_BACKENDS",
    "TTS_BACKENDS",
    "BackendRegistry",
    "EchoASR",
    "EchoTTS",
    "EchoTranslator",
    "FaultyASR",
    "FaultyTTS",
    "build_pipeline",
    "faulty",
]
