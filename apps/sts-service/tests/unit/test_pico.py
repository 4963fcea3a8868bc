"""The Pico backend's choices, with a stand-in ``pico2wave``: voice, rate markup, fitting."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from shared_audio import AudioFormat
from sts_service.backends import TTS_BACKENDS
from sts_service.backends.base import AudioClip, Fragment
from sts_service.backends.pico import (
    BASE_LEVEL,
    MAX_LEVEL,
    MIN_LEVEL,
    PicoTTS,
    pico_voice,
    speed_level_for,
)


def fragment(target: str, voice: str | None = None) -> Fragment:
    return Fragment("f-1", "s", 0, "en", target, voice)


@pytest.mark.parametrize(
    ("target", "voice", "expected"),
    [
        ("es", None, "es-ES"),
        ("es-419", None, "es-ES"),
        ("en-GB", None, "en-GB"),
        ("en", None, "en-US"),
        ("fr", None, "fr-FR"),
        ("de", None, "de-DE"),
        ("it", None, "it-IT"),
        ("pt", None, None),
        ("ca", None, None),
        ("en", "en-GB", "en-GB"),
    ],
)
def test_pico_voice_follows_the_target_language(
    target: str, voice: str | None, expected: str | None
) -> None:
    assert pico_voice(fragment(target, voice)) == expected


def test_speed_level_aims_at_the_slot_within_bounds() -> None:
    assert speed_level_for(5.0, 5.0) == BASE_LEVEL
    assert BASE_LEVEL < speed_level_for(6.0, 5.0) <= MAX_LEVEL
    assert speed_level_for(50.0, 1.0) == MAX_LEVEL
    assert speed_level_for(1.0, 50.0) == MIN_LEVEL
    assert speed_level_for(0.0, 5.0) == BASE_LEVEL


def test_pico_is_registered() -> None:
    assert "pico" in TTS_BACKENDS


@pytest.fixture
def fake_pico(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``pico2wave`` that writes 1 s of tone then 0.5 s of silence at 16 kHz, halved in
    length under ``<speed level="200">``, and logs its arguments."""
    log = tmp_path / "calls.log"
    script = tmp_path / "pico2wave"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys, wave, math, struct
            args = sys.argv[1:]
            open({str(log)!r}, "a").write(repr(args) + "\\n")
            lang, path, text = args[1], args[3], args[4]
            if lang not in ("en-US", "es-ES"):
                sys.exit(1)
            seconds = 0.5 if 'level="200"' in text else 1.0
            tone = [int(9000 * math.sin(i / 5)) for i in range(int(16000 * seconds))]
            frames = tone + [0] * 8000
            with wave.open(path, "wb") as out:
                out.setnchannels(1); out.setsampwidth(2); out.setframerate(16000)
                out.writeframes(struct.pack(f"<{{len(frames)}}h", *frames))
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return log


def test_a_long_dub_is_sped_up_by_picos_rate_and_its_silence_trimmed(fake_pico: Path) -> None:
    tts = PicoTTS()
    tts.load()
    # a 0.5 s slot for speech that takes 1 s at Pico's own rate
    source = AudioClip(np.zeros((12000, 2), np.int16), AudioFormat(24000, 2))
    out = tts.synthesize_sync("<b>Hola</b> a todos.", source, fragment("es"))
    assert out.fmt == source.fmt and out.samples.shape == source.samples.shape
    calls = fake_pico.read_text().splitlines()
    # the check at load, the measure at Pico's own rate, then the fitted rate
    assert len(calls) == 3
    assert "'-l', 'es-ES'" in calls[1]
    assert f'<speed level="{MAX_LEVEL}">' in calls[2]
    assert "<b>" not in calls[2]  # the text cannot inject markup
    # At level 200 the speech takes the whole slot: the 0.5 s of silence Pico adds after it
    # was trimmed, or the slot would end in silence (or the speech be cut).
    left = out.samples[:, 0]
    assert np.abs(left[-1200:]).max() > 5000


def test_a_language_without_a_pico_voice_is_spoken_by_espeak(
    fake_pico: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tts = PicoTTS()
    spoken: list[str] = []

    def espeak(text: str, source: AudioClip, frag: Fragment) -> AudioClip:
        spoken.append(frag.target_language)
        return source

    monkeypatch.setattr(tts.fallback, "load", lambda: None)
    monkeypatch.setattr(tts.fallback, "synthesize_sync", espeak)
    tts.load()
    source = AudioClip(np.zeros((1600, 1), np.int16), AudioFormat(16000, 1))
    tts.synthesize_sync("Olá.", source, fragment("pt"))
    assert spoken == ["pt"]
    assert "espeak-ng for other languages" in (tts.health().detail or "")


def test_without_pico2wave_load_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="make install-engines-system"):
        PicoTTS().load()
    assert not PicoTTS().health().available
