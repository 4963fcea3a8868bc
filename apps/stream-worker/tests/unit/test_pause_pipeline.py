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
    client.service_contract = "1.1"  # what a 1.1 health answer sets
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


async def dub_with_contract(
    fake: FakeSts, audio: np.ndarray[Any, Any], contract: str, context_ms: int
) -> tuple[MemorySink, list[Any]]:
    sink, spans = MemorySink(), []
    cutter = PauseSegmenter(FMT, LevelDetector(), RULES)
    feed = cutter.feed

    def noted(chunk: np.ndarray[Any, Any]) -> list[Any]:
        out = feed(chunk)
        spans.extend(out)
        return out

    cutter.feed = noted  # type: ignore[method-assign]  # records the spans as they are cut
    client = make_client(fake)
    client.service_contract = contract
    async with client:
        dubber = StreamDubber(
            client, iter([audio]), FMT, sink, options(context_ms=context_ms), cutter=cutter
        )
        await dubber.run()
    return sink, spans


async def test_a_segment_after_a_hard_cut_carries_the_audio_before_it(fake_sts: FakeSts) -> None:
    # The 1.5 s word outlasts the 1.2 s maximum: it is cut inside, and the segment that
    # starts at that cut carries the last 500 ms before it, for ASR to hear the word whole.
    audio = speech(PLAN)
    sink, spans = await dub_with_contract(fake_sts, audio, "1.2", context_ms=500)
    assert np.array_equal(sink.audio(), audio)  # the dub still covers each segment alone
    by_seq = {span.segment.sequence_number: span for span in spans}
    carried = 0
    for request in fake_sts.requests:
        before = by_seq.get(request.sequence_number - 1)
        after_hard_cut = (
            before is not None
            and before.speech
            and before.hard_cut
            and before.segment.end_frame == by_seq[request.sequence_number].segment.start_frame
        )
        if not after_hard_cut:  # after a pause cut (in silence) or a non-speech span: none
            assert request.context_audio is None
            continue
        assert before is not None and request.context_audio is not None
        end = before.segment.end_frame
        expected = audio[end - FMT.frames_for_ms(500) : end]
        assert request.context_audio.pcm_bytes() == expected.astype("<i2").tobytes()
        carried += 1
    assert carried >= 1


async def test_a_cut_in_silence_sends_no_context_audio(fake_sts: FakeSts) -> None:
    # Fixed 1 s cuts over 2 s of silence, 1 s of speech, 2 s of silence: only the segment
    # after the cut that ends the speech carries context; cuts in silence split no word.
    audio = speech([("p", 2000.0), ("w", 1000.0), ("p", 2000.0)])
    client = make_client(fake_sts)
    client.service_contract = "1.2"
    async with client:
        dubber = StreamDubber(client, iter([audio]), FMT, MemorySink(), options(context_ms=500))
        await dubber.run()
    carried = [r.sequence_number for r in fake_sts.requests if r.context_audio is not None]
    assert carried == [3]


async def test_no_context_audio_goes_to_a_1_1_service_or_when_switched_off(
    fake_sts: FakeSts,
) -> None:
    audio = speech(PLAN)
    await dub_with_contract(fake_sts, audio, "1.1", context_ms=500)
    await dub_with_contract(fake_sts, audio, "1.2", context_ms=0)
    assert fake_sts.requests and all(r.context_audio is None for r in fake_sts.requests)
