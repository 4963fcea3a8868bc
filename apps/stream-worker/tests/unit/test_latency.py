"""Where speech starts and ends in a segment (`voiced_span`), for the latency offsets."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_audio import AudioFormat, is_speech
from stream_worker.latency import STEP_MS, voiced_span


def scanned(samples: npt.NDArray[np.int16], fmt: AudioFormat) -> tuple[float, float] | None:
    """The definition: `is_speech` on each 10 ms step, one by one."""
    step = max(1, fmt.frames_for_ms(STEP_MS))
    voiced = [at for at in range(0, samples.shape[0], step) if is_speech(samples[at : at + step])]
    if not voiced:
        return None
    end = min(samples.shape[0], voiced[-1] + step)
    return fmt.duration_s(voiced[0]), fmt.duration_s(end)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(st.sampled_from([0, 30, 100, 250, 3000]), min_size=1, max_size=40),
    tail=st.integers(min_value=0, max_value=300),
    fmt=st.sampled_from([AudioFormat(16000, 1), AudioFormat(48000, 2), AudioFormat(8000, 1)]),
)
def test_voiced_span_is_is_speech_on_every_step(
    levels: list[int], tail: int, fmt: AudioFormat
) -> None:
    rng = np.random.default_rng(len(levels) + tail)
    step = fmt.frames_for_ms(STEP_MS)
    parts = [rng.normal(0, level + 1e-9, (step, fmt.channels)) for level in levels]
    parts.append(rng.normal(0, 3000, (tail % step, fmt.channels)))
    samples = np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
    assert voiced_span(samples, fmt) == scanned(samples, fmt)


def test_silence_and_nothing_have_no_voiced_span() -> None:
    fmt = AudioFormat(16000, 1)
    assert voiced_span(np.zeros((1600, 1), np.int16), fmt) is None
    assert voiced_span(np.zeros((0, 1), np.int16), fmt) is None
    loud = np.zeros((1600, 1), np.int16)
    loud[800:960] = 8000
    assert voiced_span(loud, fmt) == pytest.approx((0.05, 0.06))
