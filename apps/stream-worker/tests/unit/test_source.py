from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from worker_support import FMT, tone, write_tone

from shared_audio import AudioFormat, Segmenter, WavError
from stream_worker.demux import MediaError, MediaSource
from stream_worker.source import RawPcmReader, ThreadedChunks, paced


class Trickle(io.RawIOBase):
    """A pipe that hands out data in fixed, awkward slices (like a live ffmpeg pipe)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = data
        self._sizes = sizes
        self._pos = 0
        self._i = 0

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        size = min(n, self._sizes[self._i % len(self._sizes)])
        self._i += 1
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


def test_raw_reader_reassembles_frames_split_across_reads() -> None:
    fmt = AudioFormat(16000, 2)
    audio = tone(0.5, fmt)
    reader = RawPcmReader(Trickle(audio.tobytes(), [3, 1, 1001, 2, 77]), fmt)  # type: ignore[arg-type]
    chunks = list(reader)
    assert np.array_equal(np.concatenate(chunks), audio)
    assert reader.stats.frames == audio.shape[0]
    assert reader.stats.trailing_bytes_dropped == 0


def test_stream_cut_mid_frame_drops_the_partial_frame_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fmt = AudioFormat(16000, 2)
    audio = tone(0.1, fmt)
    data = audio.tobytes() + b"\x01\x02\x03"  # 3 of 4 bytes of one more frame
    reader = RawPcmReader(io.BytesIO(data), fmt)
    with caplog.at_level(logging.WARNING):
        out = np.concatenate(list(reader))
    assert np.array_equal(out, audio)
    assert reader.stats.trailing_bytes_dropped == 3
    assert "dropped the trailing 3 byte(s) of a 4-byte frame" in caplog.text


def test_empty_stdin_gives_no_chunks() -> None:
    reader = RawPcmReader(io.BytesIO(b""), FMT)
    assert list(reader) == []
    assert reader.stats.frames == 0


def test_a_wav_at_the_service_format_is_read_bit_exact_in_chunks(tmp_path: Path) -> None:
    audio = write_tone(tmp_path / "a.wav", 2.5)
    reader = MediaSource(str(tmp_path / "a.wav"), FMT, chunk_ms=1000)
    chunks = list(reader)
    assert all(c.shape[0] >= 16000 for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), audio)
    assert reader.format == FMT and reader.stats.frames == 40000
    assert reader.duration_s == 2.5


def test_a_non_media_file_is_rejected_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, not audio")
    with pytest.raises(MediaError, match=r"notes\.txt: cannot open"):
        MediaSource(str(bad), FMT)


def test_segmenting_arbitrary_chunks_matches_fixed_segments() -> None:
    audio = tone(3.3)
    seg = Segmenter(FMT.frames_for_ms(1000), 1)
    reader = RawPcmReader(Trickle(audio.tobytes(), [999, 5, 40001]), FMT)  # type: ignore[arg-type]
    segments = [s for chunk in reader for s in seg.feed(chunk)]
    last = seg.flush()
    assert last is not None
    segments.append(last)
    assert [s.frame_count for s in segments] == [16000, 16000, 16000, 4800]
    assert [s.sequence_number for s in segments] == [0, 1, 2, 3]
    assert np.array_equal(np.concatenate([s.samples for s in segments]), audio)


def test_paced_releases_each_chunk_at_its_real_time() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    chunks = [np.zeros((1600, 1), dtype=np.int16)] * 3
    out = list(paced(iter(chunks), FMT, clock=lambda: now[0], sleep=sleep))
    assert len(out) == 3
    assert sleeps == [0.1, 0.1, 0.1]


async def test_threaded_chunks_hand_over_in_order_and_end() -> None:
    chunks = [np.full((10, 1), i, dtype=np.int16) for i in range(10)]
    reader = ThreadedChunks(iter(chunks), asyncio.get_running_loop(), max_ahead=2)
    reader.start()
    got = []
    while (chunk := await reader.get()) is not None:
        got.append(int(chunk[0, 0]))
    assert got == list(range(10))
    assert await reader.get() is None


async def test_threaded_chunks_reraise_reader_errors() -> None:
    def broken() -> Iterator[npt.NDArray[np.int16]]:
        yield np.zeros((1, 1), dtype=np.int16)
        raise WavError("x.wav: truncated")

    reader = ThreadedChunks(broken(), asyncio.get_running_loop())
    reader.start()
    assert await reader.get() is not None
    with pytest.raises(WavError, match="truncated"):
        await reader.get()
    assert await reader.get() is None


async def test_close_unblocks_a_reader_stuck_on_a_silent_pipe() -> None:
    release = threading.Event()

    def stuck() -> Iterator[npt.NDArray[np.int16]]:
        release.wait(5)
        yield np.zeros((1, 1), dtype=np.int16)

    reader = ThreadedChunks(stuck(), asyncio.get_running_loop())
    reader.start()
    pending = asyncio.create_task(reader.get())
    await asyncio.sleep(0.05)
    reader.close()
    assert await asyncio.wait_for(pending, 1) is None
    release.set()
