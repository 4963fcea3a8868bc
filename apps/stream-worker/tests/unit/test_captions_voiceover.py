"""Unit tests of the cue timing (captions) and of the voice-over gain (ramps, carry-over)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import AudioFormat
from stream_worker.captions import Captioner, Cue, segment_cues
from stream_worker.main import UsageError, parse_settings
from stream_worker.outcome import DubResult, FallbackReason
from stream_worker.reorder import Emitted
from stream_worker.voiceover import RAMP_MS, VoiceOver

FMT = AudioFormat(16000, 1)


def _tone(
    frames: int, hz: float, level: float, start: int = 0, end: int | None = None
) -> npt.NDArray[np.int16]:
    out = np.zeros((frames, 1), dtype=np.int16)
    end = frames if end is None else end
    t = np.arange(end - start) / FMT.sample_rate
    out[start:end, 0] = (level * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return out


def _dubbed(
    original: npt.NDArray[np.int16],
    dub: npt.NDArray[np.int16],
    seq: int = 0,
    translation: str | None = "hola",
    transcript: str | None = "hello",
) -> Emitted:
    result = DubResult(audio=dub, reason=None, transcript=transcript, translation=translation)
    return Emitted(seq, dub, result, 0.0, 0.0, original)


def _fallback(original: npt.NDArray[np.int16], seq: int = 0) -> Emitted:
    result = DubResult.fallback(FallbackReason.STS_ERROR, "boom")
    return Emitted(seq, original, result, 0.0, 0.0, original)


def test_cues_cover_the_dubs_voice_at_its_output_position() -> None:
    original = _tone(16000, 200, 0.2, 3200, 12800)  # source speech 0.2-0.8 s
    dub = _tone(16000, 1000, 0.3, 4800, 9600)  # the dub speaks 0.3-0.6 s
    cues = segment_cues(_dubbed(original, dub), 32000, FMT, origin_s=1.5)
    assert cues["translation"] == Cue(1.5 + 2.0 + 0.3, 1.5 + 2.0 + 0.6, "hola")
    assert cues["source"] == Cue(1.5 + 2.0 + 0.2, 1.5 + 2.0 + 0.8, "hello")


def test_no_cue_for_fallbacks_or_empty_text_and_whole_segment_for_silent_audio() -> None:
    original = _tone(8000, 200, 0.2)
    assert segment_cues(_fallback(original), 0, FMT, 0.0) == {}
    silent = np.zeros((8000, 1), dtype=np.int16)
    cues = segment_cues(
        _dubbed(silent, silent, translation="  a\n b ", transcript=" "), 0, FMT, 0.0
    )
    assert cues == {"translation": Cue(0.0, 0.5, "a b")}


def test_captioner_sends_only_kinds_with_a_file_to_the_track() -> None:
    sent: list[tuple[str, Cue]] = []

    class Track:
        def write_cue(self, kind: str, cue: Cue) -> None:
            sent.append((kind, cue))

    captioner = Captioner(FMT, {}, track=Track())
    captioner.written(_dubbed(_tone(1600, 200, 0.2), _tone(1600, 1000, 0.3)), 0)
    assert sent == []


def test_voice_over_ducks_under_the_dub_and_ramps_without_steps() -> None:
    vo = VoiceOver(FMT, duck_db=-20.0)
    ones = np.full((16000, 1), 10000, dtype=np.int16)  # DC 'music': its gain is visible as is
    dub = np.zeros((16000, 1), dtype=np.int16)
    dub[8000:9600] = 3000  # voiced 0.5-0.6 s
    mixed = vo.mix(_dubbed(ones, dub)).astype(np.float64)[:, 0]
    gain = (mixed - dub[:, 0]) / 10000
    assert gain[:6000] == pytest.approx(1.0, abs=1e-4)  # full before the look-ahead
    assert gain[8000:9600] == pytest.approx(0.1, abs=1e-3)  # -20 dB under the dub
    assert gain[-1] > 0.99  # back up after the hold and the ramp
    assert np.max(np.abs(np.diff(gain))) <= 0.9 / FMT.frames_for_ms(RAMP_MS) + 2e-4  # ramps
    # The gain at the end of one segment is where the next one starts (no step between).
    vo2 = VoiceOver(FMT, duck_db=-20.0)
    late = np.zeros((1600, 1), dtype=np.int16)
    late[-160:] = 3000  # the dub speaks in its last 10 ms
    first = vo2.mix(_dubbed(np.full((1600, 1), 10000, dtype=np.int16), late))
    second = vo2.mix(_fallback(np.full((1600, 1), 10000, dtype=np.int16)))
    end_gain = (float(first[-1, 0]) - 3000) / 10000
    start_gain = float(second[0, 0]) / 10000
    assert end_gain < 0.5 and abs(start_gain - end_gain) < 0.02
    assert float(second[-1, 0]) / 10000 == pytest.approx(1.0, abs=1e-4)


def test_voice_over_leaves_undubbed_audio_alone_and_clips() -> None:
    vo = VoiceOver(FMT, duck_db=0.0)
    original = _tone(1600, 200, 0.9)
    fallback = _fallback(original)
    assert vo.mix(fallback) is original
    loud = vo.mix(
        _dubbed(np.full((160, 1), 30000, dtype=np.int16), np.full((160, 1), 30000, dtype=np.int16))
    )
    assert int(loud.max()) == 32767
    with pytest.raises(ValueError, match="duck_db"):
        VoiceOver(FMT, duck_db=3.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duck-db", "3"], "--duck-db: Input should be less than or equal to 0"),
        (["--duck-db", "-90"], "--duck-db: Input should be greater than or equal to -60"),
        (["--mix", "overlay"], "argument --mix: invalid choice"),
        (["--captions", " "], "--captions: Value error, must not be empty"),
    ],
)
def test_bad_mix_and_caption_options_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_settings(["-i", "in.wav", "-o", "out.wav", *argv])


def test_mix_and_caption_options_parse() -> None:
    settings = parse_settings(
        ["-i", "in.mp4", "-o", "out.mp4", "--mix", "voice-over", "--duck-db", "-12.5",
         "--captions", "es.vtt", "--captions-source", "en.vtt", "--no-caption-tracks"]
    )  # fmt: skip
    assert (settings.mix, settings.duck_db, settings.caption_tracks) == ("voice-over", -12.5, False)
    assert (settings.captions, settings.captions_source) == ("es.vtt", "en.vtt")
    defaults = parse_settings(["-i", "in.mp4", "-o", "out.mp4"])
    assert (defaults.mix, defaults.duck_db, defaults.captions) == ("replace", -15.0, None)
