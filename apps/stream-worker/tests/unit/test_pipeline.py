from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from worker_support import FMT, FakeSts, failed, make_client, ok, tone

from shared_audio import AudioFormat, WavError, pcm_to_array, read_wav
from shared_utils import CircuitBreaker
from shared_utils.contract import ErrorCode, ProcessRequest
from stream_worker.client import StsAnswer, StsClient
from stream_worker.outcome import DubResult, FallbackReason
from stream_worker.pipeline import PipelineOptions, PipelineOutcome, StreamDubber
from stream_worker.sink import RawSink, WavSink


def chunked(samples: npt.NDArray[np.int16], sizes: list[int]) -> Iterator[npt.NDArray[np.int16]]:
    start = 0
    i = 0
    while start < samples.shape[0]:
        size = sizes[i % len(sizes)]
        yield samples[start : start + size]
        start += size
        i += 1


class MemorySink:
    def __init__(self) -> None:
        self.parts: list[npt.NDArray[np.int16]] = []
        self.frames_written = 0
        self.closed = False

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        self.parts.append(samples.copy())
        self.frames_written += samples.shape[0]

    def close(self) -> None:
        self.closed = True

    def audio(self, channels: int = 1) -> npt.NDArray[np.int16]:
        if not self.parts:
            return np.zeros((0, channels), dtype=np.int16)
        return np.concatenate(self.parts)


def options(**kw: int) -> PipelineOptions:
    base = {"segment_ms": 1000, "max_inflight": 3, "timeout_ms": 1000, "shutdown_grace_ms": 200}
    base.update(kw)
    return PipelineOptions(**base)


async def run(
    client: StsClient, chunks: Iterable[npt.NDArray[np.int16]], sink: MemorySink, **kw: int
) -> PipelineOutcome:
    async with client:
        pipeline = StreamDubber(client, chunks, FMT, sink, options(**kw))
        return await pipeline.run()


async def test_echo_output_equals_input_for_any_chunking(fake_sts: FakeSts) -> None:
    audio = tone(5.3)
    sink = MemorySink()
    outcome = await run(make_client(fake_sts), chunked(audio, [1, 7777, 160, 33333]), sink)
    assert np.array_equal(sink.audio(), audio)
    assert outcome.stats.segments == 6  # 5 whole seconds + 0.3 s
    assert outcome.stats.dubbed == 6
    assert outcome.stats.fallback_total == 0
    assert fake_sts.sequences() == [0, 1, 2, 3, 4, 5] or sorted(fake_sts.sequences()) == list(
        range(6)
    )


async def test_failed_segments_fall_back_to_original_and_keep_length() -> None:
    audio = tone(6.0)

    def behaviour(req: ProcessRequest) -> httpx.Response:
        if req.sequence_number in (1, 4):
            return failed(req, ErrorCode.INVALID_AUDIO)
        # a "dub" that differs from the input, so fallbacks are visible
        return ok(req, (pcm_to_array(req.audio.pcm_bytes(), FMT) // 2).tobytes())

    fake = FakeSts(behaviour=behaviour)
    sink = MemorySink()
    outcome = await run(make_client(fake), chunked(audio, [4000]), sink)
    out = sink.audio()
    assert out.shape == audio.shape
    assert outcome.stats.fallbacks[FallbackReason.STS_ERROR] == 2
    assert outcome.stats.fallback_sequences == [1, 4]
    for seq in range(6):
        part = slice(seq * 16000, (seq + 1) * 16000)
        expected = audio[part] if seq in (1, 4) else audio[part] // 2
        assert np.array_equal(out[part], expected), seq
    assert len(fake.requests) == 6  # non-retryable: no retry


async def test_backpressure_never_exceeds_max_inflight_and_drops_nothing() -> None:
    fake = FakeSts(latency_s=0.02)
    audio = tone(3.0)
    sink = MemorySink()
    outcome = await run(
        make_client(fake), chunked(audio, [48000]), sink, segment_ms=100, max_inflight=2
    )
    assert fake.max_inflight_seen == 2
    assert outcome.stats.segments == 30 == len(fake.requests)
    assert np.array_equal(sink.audio(), audio)


async def test_empty_input_writes_nothing_and_finishes(fake_sts: FakeSts) -> None:
    sink = MemorySink()
    outcome = await run(make_client(fake_sts), iter([]), sink)
    assert sink.frames_written == 0
    assert outcome.stats.segments == 0
    assert fake_sts.requests == []


async def test_input_shorter_than_a_segment_is_one_short_segment(fake_sts: FakeSts) -> None:
    audio = tone(0.25)
    sink = MemorySink()
    outcome = await run(make_client(fake_sts), iter([audio]), sink, segment_ms=6000)
    assert np.array_equal(sink.audio(), audio)
    assert outcome.stats.segments == 1
    assert fake_sts.requests[0].audio.frame_count() == 4000


async def test_unexpected_client_error_falls_back_as_internal(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(fake_sts)
    calls = 0
    real_send = client.send

    async def flaky(
        seq: int,
        samples: npt.NDArray[np.int16],
        deadline: float | None = None,
        previous_text: str | None = None,
        context_audio: npt.NDArray[np.int16] | None = None,
    ) -> StsAnswer | DubResult:
        nonlocal calls
        calls += 1
        if seq == 1:
            raise RuntimeError("bug")
        return await real_send(seq, samples, deadline=deadline)

    monkeypatch.setattr(client, "send", flaky)
    audio = tone(3.0)
    sink = MemorySink()
    outcome = await run(client, iter([audio]), sink)
    assert calls == 3
    assert outcome.stats.fallbacks[FallbackReason.INTERNAL] == 1
    assert np.array_equal(sink.audio(), audio)


async def test_answer_after_the_reorder_deadline_is_dropped_and_counted(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(fake_sts)

    async def slow_first(
        seq: int,
        samples: npt.NDArray[np.int16],
        deadline: float | None = None,
        previous_text: str | None = None,
        context_audio: npt.NDArray[np.int16] | None = None,
    ) -> DubResult:
        if seq == 0:  # ignores the client deadline: only the reorder buffer's can save us
            await asyncio.sleep(1.4)
        else:
            await asyncio.sleep(0.05 * seq)
        return DubResult(audio=samples // 2, reason=None)

    monkeypatch.setattr(client, "send", slow_first)
    audio = tone(4.0)
    sink = MemorySink()
    # 4 segments of 1 s; deadline = 1 s + grace; segment 3 takes long enough for 0's answer
    # to come back after segment 0 was written as original audio.
    chunks = iter([audio[:16000], audio[16000:32000], audio[32000:48000], audio[48000:]])

    async with client:
        pipeline = StreamDubber(client, chunks, FMT, sink, options(max_inflight=1))
        outcome = await pipeline.run()
    out = sink.audio()
    assert out.shape == audio.shape
    assert outcome.stats.fallbacks[FallbackReason.LATE] == 1, outcome
    assert np.array_equal(out[:16000], audio[:16000])
    assert np.array_equal(out[16000:], audio[16000:] // 2)
    assert outcome.late_dropped == 1


async def test_stop_falls_back_for_everything_pending_and_writes_every_frame_read() -> None:
    fake = FakeSts(latency_s=5.0)  # never answers in time
    client = make_client(fake, timeout_ms=5000)
    audio = tone(4.0)
    sink = MemorySink()
    async with client:
        pipeline = StreamDubber(
            client,
            chunked(audio, [8000]),
            FMT,
            sink,
            options(shutdown_grace_ms=100, max_inflight=2),
        )
        task = asyncio.create_task(pipeline.run())
        await asyncio.sleep(0.3)
        pipeline.request_stop()
        pipeline.request_stop()  # idempotent
        outcome = await asyncio.wait_for(task, 3)
    assert outcome.interrupted
    out = sink.audio()
    assert out.shape[0] == outcome.stats.frames
    assert out.shape[0] > 0
    assert np.array_equal(out, audio[: out.shape[0]])
    assert outcome.stats.fallbacks[FallbackReason.SHUTDOWN] == outcome.stats.segments


async def test_output_write_failure_stops_the_run_and_raises(fake_sts: FakeSts) -> None:
    class BrokenSink(MemorySink):
        def write(self, samples: npt.NDArray[np.int16]) -> None:
            raise BrokenPipeError("downstream closed")

    audio = tone(3.0)
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(run(make_client(fake_sts), iter([audio]), BrokenSink()), 5)


async def test_input_error_midstream_ends_input_keeps_what_was_read(fake_sts: FakeSts) -> None:
    audio = tone(2.0)

    def chunks() -> Iterator[npt.NDArray[np.int16]]:
        yield audio
        raise WavError("in.wav: truncated WAV data")

    sink = MemorySink()
    outcome = await run(make_client(fake_sts), chunks(), sink)
    assert outcome.input_error == "in.wav: truncated WAV data"
    assert np.array_equal(sink.audio(), audio)


async def test_wav_and_raw_sinks_write_the_same_audio(tmp_path: Path) -> None:
    audio = tone(1.5)
    fake = FakeSts()
    wav_path = tmp_path / "out.wav"
    wav_sink = WavSink(str(wav_path), FMT)
    async with make_client(fake) as client:
        await StreamDubber(client, iter([audio]), FMT, wav_sink, options()).run()
    wav_sink.close()
    fmt, samples = read_wav(wav_path)
    assert fmt == FMT and np.array_equal(samples, audio)
    raw = io.BytesIO()
    raw_sink = RawSink(raw, FMT)
    async with make_client(FakeSts()) as client:
        await StreamDubber(client, iter([audio]), FMT, raw_sink, options()).run()
    raw_sink.close()
    assert raw.getvalue() == audio.tobytes()
    assert raw_sink.frames_written == wav_sink.frames_written == audio.shape[0]


async def test_stereo_stream_round_trips() -> None:
    fmt = AudioFormat(48000, 2)
    audio = tone(2.2, fmt)
    fake = FakeSts()
    sink = MemorySink()
    async with make_client(fake, fmt=fmt) as client:
        await StreamDubber(client, chunked(audio, [4801]), fmt, sink, options()).run()
    assert np.array_equal(sink.audio(2), audio)


async def test_breaker_opens_after_consecutive_failures_and_skips_the_service() -> None:
    fake = FakeSts(behaviour=lambda req: failed(req, ErrorCode.MODEL_ERROR))
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=60)
    audio = tone(8.0)
    sink = MemorySink()
    outcome = await run(make_client(fake, breaker=breaker), iter([audio]), sink, max_inflight=1)
    assert outcome.stats.fallbacks[FallbackReason.STS_ERROR] == 3
    assert outcome.stats.fallbacks[FallbackReason.CIRCUIT_OPEN] == 5
    assert len(fake.requests) == 6  # 3 segments x (1 + 1 retry), then nothing
    assert np.array_equal(sink.audio(), audio)


async def test_a_dubber_stopped_before_it_runs_reads_nothing_and_runs_only_once(
    fake_sts: FakeSts,
) -> None:
    sink = MemorySink()
    async with make_client(fake_sts) as client:
        dubber = StreamDubber(client, iter([tone(2.0)]), FMT, sink, options())
        dubber.request_stop()  # e.g. a signal during the health check
        outcome = await dubber.run()
        assert outcome.interrupted and outcome.input_frames == 0
        assert sink.audio().shape == (0, 1) and not fake_sts.requests
        with pytest.raises(RuntimeError, match="runs once"):
            await dubber.run()
