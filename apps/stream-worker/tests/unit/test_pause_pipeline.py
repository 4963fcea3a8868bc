"""The pipeline with pause cuts: only speech is sent, and the live slots bound every segment."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import numpy as np
from worker_support import FMT, FakeSts, LevelDetector, make_client, ok, speech

from shared_utils.contract import ProcessRequest
from stream_worker.pipeline import PipelineOptions, PipelineOutcome, StreamDubber
from stream_worker.segmenter import PauseRules, PauseSegmenter

RULES = PauseRules(pause_ms=300, min_segment_ms=1000, max_segment_ms=1000 + 200)
PLAN = [("p", 2000.0), ("w", 1500.0), ("p", 500.0), ("w", 1100.0), ("p", 3000.0)]


class MemorySink:
    def __init__(self) -> None:
        self.parts: list[np.ndarray[Any, Any]] = []
        self.frames_written = 0

    def write(self, samples: np.ndarray[Any, Any]) -> None:
        self.parts.append(samples.copy())
        self.frames_written += samples.shape[0]

    def close(self) -> None:
        pass

    def audio(self) -> np.ndarray[Any, Any]:
        return np.concatenate(self.parts)


def options(**kw: int) -> PipelineOptions:
    base = {"segment_ms": 1000, "max_inflight": 3, "timeout_ms": 1000, "shutdown_grace_ms": 200}
    return PipelineOptions(**(base | kw))


async def dub(
    fake: FakeSts, audio: np.ndarray[Any, Any], **kw: int
) -> tuple[PipelineOutcome, MemorySink, list[dict[str, Any]]]:
    sink = MemorySink()
    records: list[dict[str, Any]] = []
    client = make_client(fake)
    async with client:
        dubber = StreamDubber(
            client,
            iter([audio[i : i + 320] for i in range(0, audio.shape[0], 320)]),
            FMT,
            sink,
            options(**kw),
            cutter=PauseSegmenter(FMT, LevelDetector(), RULES),
            segment_log=records.append,
        )
        outcome = await dubber.run()
    return outcome, sink, records


async def test_only_speech_is_sent_and_the_output_is_the_input_where_nothing_is_dubbed(
    fake_sts: FakeSts,
) -> None:
    audio = speech(PLAN)
    outcome, sink, records = await dub(fake_sts, audio)
    assert np.array_equal(sink.audio(), audio)  # echo: bit-exact, as many frames as the input
    stats = outcome.stats
    assert stats.non_speech > 0 and stats.fallback_total == 0
    assert len(fake_sts.requests) == stats.dubbed == sum(r["speech"] for r in records)
    assert stats.non_speech_frames == sum(
        round((r["source_end_s"] - r["source_start_s"]) * FMT.sample_rate)
        for r in records
        if not r["speech"]
    )
    # Every request is speech: none of them starts inside the leading 2 s of silence
    # (the onset pad reaches 96 ms back).
    for request, record in zip(fake_sts.requests, [r for r in records if r["speech"]], strict=True):
        assert request.sequence_number == record["seq"]
        assert record["source_start_s"] >= 2.0 - 0.096 - 0.032
    # The records tile the input, in order.
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert records[0]["source_start_s"] == 0
    for before, after in itertools.pairwise(records):
        assert before["source_end_s"] == after["source_start_s"]
    assert records[-1]["source_end_s"] == round(audio.shape[0] / FMT.sample_rate, 3)
    assert {r["outcome"] for r in records} == {"dubbed", "not_speech"}
    assert all(r["transcript"] for r in records if r["speech"])


async def test_live_a_dub_that_would_miss_its_slot_goes_out_as_original_at_its_slot() -> None:
    audio = speech(PLAN)
    slow = FakeSts(latency_s=3.0)  # far beyond any slot
    _, sink, records = await dub(slow, audio, max_delay_ms=1700, timeout_ms=8000)
    assert np.array_equal(sink.audio(), audio)
    speech_records = [r for r in records if r["speech"]]
    assert speech_records and all(r["outcome"] == "timeout" for r in speech_records)
    # Written by the slot (input time of the first sample + 1.7 s), not after the 3 s answer.
    for record in records:
        assert record["emitted_wall_s"] <= record["source_start_s"] + 1.7 + 0.05


async def test_live_offsets_are_the_delay_when_the_service_is_fast(fake_sts: FakeSts) -> None:
    outcome, _, records = await dub(fake_sts, speech(PLAN), max_delay_ms=1700)
    offsets = [r["start_offset_ms"] for r in records if r["outcome"] == "dubbed"]
    assert offsets and all(abs(offset - 1700) < 60 for offset in offsets)
    summary = outcome.stats.summary({})
    latency, segments = summary["latency_ms"], summary["segments"]
    assert isinstance(latency, dict) and isinstance(segments, dict)
    assert latency["start_offset"]["p50"] is not None
    assert segments["non_speech"] == outcome.stats.non_speech


def numbered(request: ProcessRequest) -> httpx.Response:
    """An echo answer whose transcript names its segment."""
    body = json.loads(ok(request).content)
    body["transcript"] = f"words of segment {request.sequence_number}"
    return httpx.Response(200, json=body)


async def test_each_request_carries_the_previous_transcript_to_a_service_that_reads_it() -> None:
    fake_sts = FakeSts(behaviour=numbered)
    audio = speech(PLAN)
    sink = MemorySink()
    client = make_client(fake_sts)
    client.send_previous_text = True  # what a 1.1 health answer sets
    async with client:
        dubber = StreamDubber(
            client,
            iter([audio]),
            FMT,
            sink,
            options(max_inflight=1),  # one at a time: each answer is in before the next
            cutter=PauseSegmenter(FMT, LevelDetector(), RULES),
        )
        await dubber.run()
    sent = fake_sts.requests
    assert len(sent) >= 2 and sent[0].previous_text is None
    for before, after in itertools.pairwise(sent):
        assert after.previous_text is not None
        assert after.previous_text == f"words of segment {before.sequence_number}"


async def test_no_previous_text_goes_to_a_service_that_would_reject_it(fake_sts: FakeSts) -> None:
    _, _, records = await dub(fake_sts, speech(PLAN), max_inflight=1)
    assert sum(r["speech"] for r in records) >= 2
    assert all(request.previous_text is None for request in fake_sts.requests)
