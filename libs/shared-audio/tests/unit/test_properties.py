"""Property-based tests (hypothesis) for the invariants the services rely on."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared_audio import (
    AudioFormat,
    SampleEncoding,
    Segment,
    Segmenter,
    array_to_pcm,
    fit_to_length,
    float32_to_int16,
    int16_to_float32,
    pcm_to_array,
)

# Hypothesis' per-example deadline would make the suite flaky on a busy 2-core machine.
FAST = settings(max_examples=200, deadline=None)

channels_st = st.sampled_from([1, 2])
frames_st = st.integers(min_value=0, max_value=300)


@st.composite
def int16_audio(draw: st.DrawFn, max_frames: int = 300) -> npt.NDArray[Any]:
    channels = draw(channels_st)
    frames = draw(st.integers(min_value=0, max_value=max_frames))
    return draw(arrays(np.int16, (frames, channels)))


@FAST
@given(int16_audio())
def test_int16_float_int16_round_trip_is_exact(samples: npt.NDArray[Any]) -> None:
    back = float32_to_int16(int16_to_float32(samples))
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, samples)


@FAST
@given(int16_audio())
def test_int16_to_float32_is_in_unit_range(samples: npt.NDArray[Any]) -> None:
    out = int16_to_float32(samples)
    assert out.shape == samples.shape
    if out.size:
        assert out.min() >= -1.0
        assert out.max() < 1.0


@FAST
@given(int16_audio(), st.sampled_from([8000, 16000, 48000]))
def test_pcm_bytes_round_trip(samples: npt.NDArray[Any], rate: int) -> None:
    fmt = AudioFormat(rate, samples.shape[1])
    data = array_to_pcm(samples, fmt)
    assert len(data) == samples.shape[0] * fmt.frame_bytes
    np.testing.assert_array_equal(pcm_to_array(data, fmt), samples)
    assert array_to_pcm(pcm_to_array(data, fmt), fmt) == data


@FAST
@given(st.binary(max_size=200), channels_st, st.sampled_from(list(SampleEncoding)))
def test_pcm_bytes_either_decode_exactly_or_raise(
    data: bytes, channels: int, enc: SampleEncoding
) -> None:
    fmt = AudioFormat(16000, channels, enc)
    if len(data) % fmt.frame_bytes:
        try:
            pcm_to_array(data, fmt)
        except ValueError as exc:
            assert str(len(data)) in str(exc)
        else:
            raise AssertionError("partial frame accepted")
    else:
        assert array_to_pcm(pcm_to_array(data, fmt), fmt) == data


@FAST
@given(
    arrays(
        np.float32,
        st.integers(0, 200),
        elements=st.floats(-4.0, 4.0, width=32, allow_nan=False),
    )
)
def test_float32_to_int16_clips_and_is_within_half_a_step(samples: npt.NDArray[Any]) -> None:
    out = float32_to_int16(samples)
    expected = np.clip(samples.astype(np.float64) * 32768, -32768, 32767)
    assert np.all(np.abs(out - expected) <= 0.5)


@st.composite
def stream_and_chunking(draw: st.DrawFn) -> tuple[npt.NDArray[Any], list[int], int]:
    samples = draw(int16_audio(max_frames=400))
    cuts = draw(st.lists(st.integers(0, samples.shape[0]), max_size=12))
    size = draw(st.integers(1, 64))
    return samples, sorted(cuts), size


def chunks_of(samples: npt.NDArray[Any], cuts: list[int]) -> list[npt.NDArray[Any]]:
    bounds = [0, *cuts, samples.shape[0]]
    return [samples[a:b] for a, b in itertools.pairwise(bounds)]


@FAST
@given(stream_and_chunking())
def test_segmenter_over_any_chunking_cuts_every_size_frames_bit_exactly(
    case: tuple[npt.NDArray[Any], list[int], int],
) -> None:
    samples, cuts, size = case
    segmenter = Segmenter(size, samples.shape[1])
    got: list[Segment] = []
    for chunk in chunks_of(samples, cuts):
        got += segmenter.feed(chunk)
    tail = segmenter.flush()
    if tail is not None:
        got.append(tail)
    frames = samples.shape[0]
    assert [(s.sequence_number, s.start_frame, s.frame_count) for s in got] == [
        (n, start, min(size, frames - start)) for n, start in enumerate(range(0, frames, size))
    ]
    # Every segment but the last is full; the last is 1..size frames.
    assert all(s.frame_count == size for s in got[:-1])
    if got:
        assert 1 <= got[-1].frame_count <= size
        np.testing.assert_array_equal(np.concatenate([s.samples for s in got]), samples)
    assert segmenter.frames_fed == samples.shape[0]


@FAST
@given(int16_audio(max_frames=100), st.integers(0, 200))
def test_fit_to_length(samples: npt.NDArray[Any], target: int) -> None:
    out = fit_to_length(samples, target)
    assert out.shape == (target, samples.shape[1])
    assert out.dtype == samples.dtype
    keep = min(target, samples.shape[0])
    np.testing.assert_array_equal(out[:keep], samples[:keep])
    assert not out[keep:].any()
    # Fitting back to the original length restores what survived the trim.
    again = fit_to_length(out, samples.shape[0])
    np.testing.assert_array_equal(again[:keep], samples[:keep])
