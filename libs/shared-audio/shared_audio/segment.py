"""Cutting a sample stream that arrives in chunks into fixed-size segments.

A stream is cut into segments of ``frames_per_segment`` frames; the last one may be shorter.
Each :class:`Segment` carries its sequence number (0, 1, 2, ...) and the index of its first
frame in the stream, so the segments of a stream are contiguous: each starts where the
previous one ended, and concatenating them gives the stream back, bit for bit.

Segments are views of the input wherever possible: :class:`Segmenter` copies only the frames
of a segment that straddles two fed chunks. Do not modify an array after handing it over, or
the segments cut from it change too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio.errors import PcmError, SegmentError
from shared_audio.pcm import check_frames


@dataclass(frozen=True, eq=False)
class Segment:
    """A run of consecutive frames cut from a stream.

    Attributes:
        sequence_number: Position of the segment in its stream, from 0.
        start_frame: Index in the stream of the segment's first frame.
        samples: The frames, shaped ``(frames, channels)``; usually a view of the stream.

    Raises:
        SegmentError: if ``samples`` is not 2-D or a number is negative.

    Example:
        >>> seg = Segment(1, 480, np.zeros((480, 2), dtype=np.int16))
        >>> seg.frame_count, seg.end_frame
        (480, 960)
    """

    sequence_number: int
    start_frame: int
    samples: npt.NDArray[Any]

    def __post_init__(self) -> None:
        for field in ("sequence_number", "start_frame"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SegmentError(f"Segment.{field} must be an int, got {value!r}")
            if value < 0:
                raise SegmentError(f"Segment.{field} must be >= 0, got {value}")
            object.__setattr__(self, field, int(value))
        if not isinstance(self.samples, np.ndarray) or self.samples.ndim != 2:
            shape = getattr(self.samples, "shape", type(self.samples).__name__)
            raise SegmentError(f"Segment.samples must be a (frames, channels) array, got {shape}")

    @property
    def frame_count(self) -> int:
        """Number of frames in the segment."""
        return int(self.samples.shape[0])

    @property
    def end_frame(self) -> int:
        """Index in the stream just past the segment's last frame."""
        return self.start_frame + self.frame_count

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])


class Segmenter:
    """Cut a live stream that arrives in chunks of any size into fixed-size segments.

    Feed chunks with :meth:`feed`; it returns every segment completed so far. At the end of
    the stream, :meth:`flush` returns the shorter last segment (or ``None``). The segments are
    the same whatever the chunking: every ``frames_per_segment`` frames of the stream.

    Segments that lie inside one chunk are views of it; a segment that straddles chunks is
    assembled in a new array (only those frames are copied).

    Args:
        frames_per_segment: Frames per segment (> 0).
        channels: Channel count every chunk must have (> 0).

    Raises:
        SegmentError: for a non-positive segment size or channel count.

    Example:
        >>> seg = Segmenter(frames_per_segment=4, channels=1)
        >>> [s.start_frame for s in seg.feed(np.zeros((6, 1), dtype=np.int16))]
        [0]
        >>> [s.start_frame for s in seg.feed(np.zeros((3, 1), dtype=np.int16))]
        [4]
        >>> seg.flush().frame_count
        1
    """

    def __init__(self, frames_per_segment: int, channels: int) -> None:
        self._size = _check_segment_size(frames_per_segment)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise SegmentError(f"channels must be a positive int, got {channels!r}")
        self._channels = channels
        self._dtype: np.dtype[Any] | None = None
        self._next_number = 0
        self._next_start = 0
        # The segment being assembled across chunks, and how many of its frames are filled.
        self._pending: npt.NDArray[Any] | None = None
        self._filled = 0

    @property
    def frames_per_segment(self) -> int:
        """Frames in every segment but the last."""
        return self._size

    @property
    def channels(self) -> int:
        """Channel count of the stream."""
        return self._channels

    @property
    def frames_fed(self) -> int:
        """Total frames fed so far."""
        return self._next_start + self._filled

    @property
    def pending_frames(self) -> int:
        """Frames fed but not yet returned in a segment."""
        return self._filled

    @property
    def next_sequence_number(self) -> int:
        """Sequence number the next segment will get."""
        return self._next_number

    def feed(self, chunk: npt.NDArray[Any]) -> list[Segment]:
        """Add a chunk of the stream and return the segments it completes.

        Args:
            chunk: ``(frames, channels)`` samples, any number of frames (0 included). All
                chunks of a stream must share one dtype.

        Returns:
            The completed segments in order (possibly none).

        Raises:
            SegmentError: if the chunk's shape or dtype does not match the stream.
        """
        frames = _check_samples(chunk, self._channels)
        if self._dtype is None:
            self._dtype = frames.dtype
        elif frames.dtype != self._dtype:
            raise SegmentError(
                f"chunk dtype {frames.dtype} differs from the stream's dtype {self._dtype}"
            )
        segments: list[Segment] = []
        offset = 0
        total = frames.shape[0]
        if self._pending is not None:
            take = min(self._size - self._filled, total)
            self._pending[self._filled : self._filled + take] = frames[:take]
            self._filled += take
            offset = take
            if self._filled == self._size:
                segments.append(self._emit(self._pending))
                self._pending = None
                self._filled = 0
        while total - offset >= self._size:
            segments.append(self._emit(frames[offset : offset + self._size]))
            offset += self._size
        if offset < total:
            self._pending = np.empty((self._size, self._channels), dtype=frames.dtype)
            self._filled = total - offset
            self._pending[: self._filled] = frames[offset:]
        return segments

    def flush(self) -> Segment | None:
        """Return the pending frames as a (shorter) segment, or ``None`` if there are none.

        The segmenter can keep being fed afterwards; numbering and frame positions continue.
        """
        if self._pending is None:
            return None
        pending, filled = self._pending, self._filled
        self._pending = None
        self._filled = 0
        return self._emit(pending[:filled])

    def _emit(self, samples: npt.NDArray[Any]) -> Segment:
        segment = Segment(self._next_number, self._next_start, samples)
        self._next_number += 1
        self._next_start += samples.shape[0]
        return segment


def fit_to_length(samples: npt.NDArray[Any], frame_count: int) -> npt.NDArray[Any]:
    """Pad with silence (zeros) or trim at the end to exactly ``frame_count`` frames.

    For dubbed audio that came back shorter or longer than the original segment. Works on
    any array along its first axis (frames); other axes are kept.

    Args:
        samples: The audio, frames along the first axis.
        frame_count: The wanted number of frames (>= 0).

    Returns:
        ``samples`` itself if it already has ``frame_count`` frames, a view of its first
        ``frame_count`` frames if longer, or a new array ending in zeros if shorter.

    Raises:
        SegmentError: if ``frame_count`` is negative or not an int, or ``samples`` is not an
            array with at least one dimension.

    Example:
        >>> fit_to_length(np.array([[1], [2], [3]], dtype=np.int16), 5).ravel().tolist()
        [1, 2, 3, 0, 0]
    """
    if isinstance(frame_count, bool) or not isinstance(frame_count, (int, np.integer)):
        raise SegmentError(f"frame_count must be an int, got {frame_count!r}")
    if frame_count < 0:
        raise SegmentError(f"frame_count must be >= 0, got {frame_count}")
    if not isinstance(samples, np.ndarray) or samples.ndim == 0:
        raise SegmentError(
            "samples must be an array with a frames axis, "
            f"got {getattr(samples, 'shape', samples)!r}"
        )
    have = samples.shape[0]
    if have == frame_count:
        return samples
    if have > frame_count:
        return samples[:frame_count]
    padded = np.zeros((int(frame_count), *samples.shape[1:]), dtype=samples.dtype)
    padded[:have] = samples
    return padded


def _check_segment_size(frames_per_segment: int) -> int:
    if isinstance(frames_per_segment, bool) or not isinstance(frames_per_segment, int):
        raise SegmentError(f"frames_per_segment must be an int, got {frames_per_segment!r}")
    if frames_per_segment <= 0:
        raise SegmentError(f"frames_per_segment must be positive, got {frames_per_segment}")
    return frames_per_segment


def _check_samples(samples: npt.NDArray[Any], channels: int | None) -> npt.NDArray[Any]:
    try:
        return check_frames(samples, channels)
    except PcmError as exc:
        raise SegmentError(str(exc)) from None
