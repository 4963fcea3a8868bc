from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import (
    Segment,
    Segmenter,
    SegmentError,
    fit_to_length,
)


def stream(frames: int, channels: int = 2) -> npt.NDArray[Any]:
    return np.arange(frames * channels, dtype=np.int16).reshape(frames, channels)


def layout(frames: int, size: int) -> list[tuple[int, int, int]]:
    """(sequence number, start frame, frame count) of a stream cut every `size` frames."""
    return [(n, start, min(size, frames - start)) for n, start in enumerate(range(0, frames, size))]


def test_segment_properties() -> None:
    seg = Segment(3, 300, np.zeros((100, 2), dtype=np.int16))
    assert (seg.frame_count, seg.end_frame, seg.channels) == (100, 400, 2)
    with pytest.raises(AttributeError):
        seg.start_frame = 0  # type: ignore[misc]  # frozen on purpose


def test_segment_accepts_numpy_ints() -> None:
    seg = Segment(np.int64(1), np.int32(5), np.zeros((1, 1), dtype=np.int16))  # type: ignore[arg-type]  # numpy ints on purpose
    assert type(seg.sequence_number) is int
    assert type(seg.start_frame) is int


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, np.zeros((1, 1))), "sequence_number must be >= 0"),
        ((0, -5, np.zeros((1, 1))), "start_frame must be >= 0"),
        ((0.0, 0, np.zeros((1, 1))), "sequence_number must be an int"),
        ((0, True, np.zeros((1, 1))), "start_frame must be an int"),
        ((0, 0, np.zeros(3)), r"\(frames, channels\) array, got \(3,\)"),
        ((0, 0, [1, 2]), "got list"),
    ],
)
def test_segment_validation(args: tuple[object, object, object], message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        Segment(*args)  # type: ignore[arg-type]  # invalid on purpose


def test_segmenter_numbers_and_places_every_segment_whatever_the_chunking() -> None:
    x = stream(11)
    segmenter = Segmenter(frames_per_segment=4, channels=2)
    out: list[Segment] = []
    for chunk in (x[:1], x[1:6], x[6:6], x[6:10], x[10:]):
        out += segmenter.feed(chunk)
    tail = segmenter.flush()
    assert tail is not None
    out.append(tail)
    assert [(s.sequence_number, s.start_frame, s.frame_count) for s in out] == layout(11, 4)
    for got in out:
        np.testing.assert_array_equal(got.samples, x[got.start_frame : got.end_frame])


def test_segmenter_views_when_chunks_align() -> None:
    x = stream(8)
    segmenter = Segmenter(4, 2)
    segs = segmenter.feed(x)
    assert len(segs) == 2
    assert all(np.shares_memory(s.samples, x) for s in segs)
    assert segmenter.flush() is None
    assert segmenter.pending_frames == 0


def test_segmenter_copies_only_the_straddling_segment() -> None:
    a, b = stream(6), stream(9) + 100
    segmenter = Segmenter(4, 2)
    first = segmenter.feed(a)
    assert segmenter.pending_frames == 2
    second = segmenter.feed(b)
    assert np.shares_memory(first[0].samples, a)
    straddling, inside = second
    assert not np.shares_memory(straddling.samples, a)
    assert not np.shares_memory(straddling.samples, b)
    assert np.shares_memory(inside.samples, b)
    np.testing.assert_array_equal(straddling.samples, np.concatenate([a[4:], b[:2]]))
    np.testing.assert_array_equal(inside.samples, b[2:6])
    # The buffered remainder is a copy: changing the fed chunk later does not affect it.
    expected_tail = b[6:].copy()
    b[-1] = -1
    tail = segmenter.flush()
    assert tail is not None
    np.testing.assert_array_equal(tail.samples, expected_tail)


def test_segmenter_counters_and_flush_continuation() -> None:
    segmenter = Segmenter(3, 1)
    assert (segmenter.frames_per_segment, segmenter.channels) == (3, 1)
    segmenter.feed(np.zeros((5, 1), np.int16))
    assert (segmenter.frames_fed, segmenter.pending_frames, segmenter.next_sequence_number) == (
        5,
        2,
        1,
    )
    tail = segmenter.flush()
    assert tail is not None
    assert (tail.sequence_number, tail.start_frame, tail.frame_count) == (1, 3, 2)
    assert segmenter.flush() is None
    nxt = segmenter.feed(np.ones((3, 1), np.int16))
    assert [(s.sequence_number, s.start_frame) for s in nxt] == [(2, 5)]


def test_segmenter_one_frame_at_a_time() -> None:
    x = stream(7, channels=1)
    segmenter = Segmenter(3, 1)
    out: list[Segment] = []
    for i in range(7):
        out += segmenter.feed(x[i : i + 1])
    last = segmenter.flush()
    assert last is not None
    out.append(last)
    np.testing.assert_array_equal(np.concatenate([s.samples for s in out]), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames_per_segment": 0, "channels": 1}, "frames_per_segment must be positive"),
        ({"frames_per_segment": 4, "channels": 0}, "channels must be a positive int"),
        ({"frames_per_segment": 4, "channels": True}, "channels must be a positive int"),
    ],
)
def test_segmenter_rejects_bad_configuration(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        Segmenter(**kwargs)


def test_segmenter_rejects_mismatched_chunks() -> None:
    segmenter = Segmenter(4, 2)
    with pytest.raises(SegmentError, match=r"1 channels .*expected 2"):
        segmenter.feed(np.zeros((3, 1), np.int16))
    with pytest.raises(SegmentError, match="got 1-D"):
        segmenter.feed(np.zeros(3, np.int16))
    segmenter.feed(np.zeros((3, 2), np.int16))
    with pytest.raises(
        SegmentError, match="chunk dtype float32 differs from the stream's dtype int16"
    ):
        segmenter.feed(np.zeros((3, 2), np.float32))


def test_fit_to_length_pads_with_silence() -> None:
    x = np.array([[1, 2], [3, 4]], dtype=np.int16)
    out = fit_to_length(x, 4)
    assert out.dtype == np.int16
    assert out.tolist() == [[1, 2], [3, 4], [0, 0], [0, 0]]
    assert not np.shares_memory(out, x)


def test_fit_to_length_trims_as_view_and_keeps_exact() -> None:
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    trimmed = fit_to_length(x, 2)
    assert trimmed.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert np.shares_memory(trimmed, x)
    assert fit_to_length(x, 5) is x
    assert fit_to_length(x, 0).shape == (0, 2)
    assert fit_to_length(np.zeros((0, 1), np.int16), 3).tolist() == [[0], [0], [0]]


def test_fit_to_length_1d() -> None:
    assert fit_to_length(np.array([1, 2, 3], dtype=np.int16), 5).tolist() == [1, 2, 3, 0, 0]
    assert fit_to_length(np.array([1, 2, 3], dtype=np.int16), np.int64(1)).tolist() == [1]  # type: ignore[arg-type]  # numpy int ok


@pytest.mark.parametrize(
    ("samples", "count", "message"),
    [
        (np.zeros((2, 1)), -1, "frame_count must be >= 0, got -1"),
        (np.zeros((2, 1)), 1.5, "frame_count must be an int"),
        (np.zeros((2, 1)), False, "frame_count must be an int"),
        (np.float32(1.0), 2, "samples must be an array with a frames axis"),
        ([1, 2], 2, "samples must be an array"),
    ],
)
def test_fit_to_length_rejects_bad_input(samples: object, count: object, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        fit_to_length(samples, count)  # type: ignore[arg-type]  # invalid on purpose


def test_segmenter_rejects_non_arrays() -> None:
    with pytest.raises(SegmentError, match="must be a numpy array, got list"):
        Segmenter(4, 1).feed([[1], [2]])  # type: ignore[arg-type]  # wrong type on purpose
