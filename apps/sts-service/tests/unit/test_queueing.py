"""Fair engine slots: busy is answered as busy (429 + Retry-After), and a stream that floods
the service waits behind itself while the other streams keep their turn."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from shared_audio import AudioFormat
from sts_service.app import create_app
from sts_service.backends import EchoTranslator, EchoTTS
from sts_service.backends.base import AudioClip, EngineOptions, Fragment, SyncASRBackend
from sts_service.config import StsSettings
from sts_service.pipeline import Pipeline
from sts_service.queueing import FairSlots, QueueFullError


async def _queued(slots: FairSlots, key: str, served: list[str]) -> None:
    await slots.acquire(key)
    served.append(key)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_next_stream_in_turn_not_the_oldest_waiter() -> None:
    slots = FairSlots(limit=1, queue=8)
    await slots.acquire("busy")
    served: list[str] = []
    tasks = [asyncio.create_task(_queued(slots, key, served)) for key in "aaab"]
    await _settle()
    assert slots.waiting == 4
    for _ in tasks:
        slots.release()
        await _settle()
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "a", "a"]  # FIFO would serve b last
    assert slots.running == 1 and slots.waiting == 0


async def test_a_full_queue_refuses_the_flooding_stream_not_the_newcomer() -> None:
    slots = FairSlots(limit=1, queue=2)
    await slots.acquire("busy")
    served: list[str] = []
    flood = [asyncio.create_task(_queued(slots, "a", served)) for _ in range(2)]
    await _settle()
    with pytest.raises(QueueFullError, match="1 call\\(s\\) running and 2 waiting"):
        await slots.acquire("a")  # its own line is the longest: it is refused
    newcomer = asyncio.create_task(_queued(slots, "b", served))
    await _settle()
    # The newest of a's two waiters gave its place to b.
    with pytest.raises(QueueFullError):
        await asyncio.wait_for(flood[1], 5)
    assert slots.waiting == 2
    slots.release()
    slots.release()
    await asyncio.gather(flood[0], newcomer)
    assert served == ["a", "b"]


async def test_equal_lines_keep_their_places_when_the_queue_is_full() -> None:
    slots = FairSlots(limit=1, queue=2)
    await slots.acquire("busy")
    served: list[str] = []
    tasks = [asyncio.create_task(_queued(slots, key, served)) for key in "ab"]
    await _settle()
    with pytest.raises(QueueFullError):
        await slots.acquire("c")
    slots.release()
    slots.release()
    await asyncio.gather(*tasks)
    assert served == ["a", "b"]


async def test_a_waiter_that_gives_up_frees_its_place_and_never_takes_a_slot() -> None:
    slots = FairSlots(limit=1, queue=1)
    await slots.acquire("busy")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(slots.acquire("a"), 0.01)
    assert slots.waiting == 0
    slots.release()
    assert slots.running == 0


async def test_a_slot_granted_as_its_waiter_gives_up_is_passed_on() -> None:
    slots = FairSlots(limit=1, queue=2)
    await slots.acquire("busy")
    served: list[str] = []
    first = asyncio.create_task(_queued(slots, "a", served))
    second = asyncio.create_task(_queued(slots, "b", served))
    await _settle()
    slots.release()  # granted to a, whose wait is cancelled before it resumes
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await second
    assert served == ["b"] and slots.running == 1


async def test_a_slot_released_from_another_thread_wakes_the_waiter() -> None:
    slots = FairSlots(limit=1, queue=1)
    await slots.acquire("busy")
    waiter = asyncio.create_task(slots.acquire("a"))
    await _settle()
    thread = threading.Thread(target=slots.release)
    thread.start()
    await asyncio.wait_for(waiter, 5)
    thread.join()
    assert slots.running == 1 and slots.waiting == 0


class SlowASR(SyncASRBackend):
    """Each transcription holds the engine for `seconds`; `served` logs the streams in order."""

    def __init__(self, options: EngineOptions, seconds: float) -> None:
        super().__init__(options)
        self.seconds = seconds
        self.served: list[str] = []

    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        self.served.append(fragment.stream_id)
        time.sleep(self.seconds)
        return f"seq {fragment.sequence_number}"


def _body(stream: str, seq: int) -> dict[str, Any]:
    tone = (9000 * np.sin(np.arange(1600) / 5)).astype(np.int16)
    return {
        "fragment_id": f"{stream}-{seq}",
        "stream_id": stream,
        "sequence_number": seq,
        "audio": AudioClip(tone[:, None], AudioFormat(16000, 1)).to_payload().model_dump(),
        "config": {"source_language": "en", "target_language": "es"},
        "timeout_ms": 10000,
    }


def _app(options: EngineOptions, seconds: float) -> tuple[Any, SlowASR]:
    asr = SlowASR(options, seconds)
    return create_app(StsSettings(), pipeline=Pipeline(asr, EchoTranslator(), EchoTTS())), asr


async def test_a_full_stage_queue_answers_429_queue_full_with_retry_after() -> None:
    app, _ = _app(EngineOptions(stage_concurrency=1, stage_queue=0), 0.3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
        first = asyncio.create_task(client.post("/v1/process", json=_body("s", 0)))
        await asyncio.sleep(0.1)
        busy = await client.post("/v1/process", json=_body("s", 1))
        assert (await first).json()["status"] == "success"
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"
    error = busy.json()["error"]
    assert error["code"] == "QUEUE_FULL" and error["retryable"] and error["stage"] == "asr"
    assert "STS_STAGE_QUEUE" in error["message"]
    # Busy, not broken, in words too.
    assert error["message"].startswith("asr backend 'unnamed' is busy: 1 call(s) running")


async def test_a_stream_sending_four_times_its_share_delays_only_itself() -> None:
    app, asr = _app(EngineOptions(stage_concurrency=1, stage_queue=4), 0.01)
    transport = httpx.ASGITransport(app=app)
    flood_codes: list[int] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
        done = asyncio.Event()

        async def flood(lane: int) -> None:
            # Four lanes without pause: always four times the fair stream's one request.
            seq = lane
            while not done.is_set():
                answer = await client.post("/v1/process", json=_body("flood", seq))
                flood_codes.append(answer.status_code)
                if answer.status_code == 429:
                    await asyncio.sleep(0.005)
                seq += 4

        async def fair() -> list[int]:
            await asyncio.sleep(0.05)  # the flood fills the queue first
            codes = []
            for seq in range(8):
                codes.append(
                    (await client.post("/v1/process", json=_body("fair", seq))).status_code
                )
            done.set()
            return codes

        lanes = [asyncio.create_task(flood(lane)) for lane in range(4)]
        fair_codes = await fair()
        await asyncio.gather(*lanes)
    assert fair_codes == [200] * 8  # never refused, though the flood keeps the queue full
    assert 200 in flood_codes
    # Served in turn: between two fair fragments, the flood gets at most the call that was
    # running and the one turn it is owed; first come first served would give it all four.
    fair_at = [i for i, stream in enumerate(asr.served) if stream == "fair"]
    assert len(fair_at) == 8
    assert max(b - a - 1 for a, b in itertools.pairwise(fair_at)) <= 2


async def test_an_engine_queue_refusal_is_counted_as_queue_full() -> None:
    app, _ = _app(EngineOptions(stage_concurrency=1, stage_queue=0), 0.3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
        first = asyncio.create_task(client.post("/v1/process", json=_body("s", 0)))
        await asyncio.sleep(0.1)
        assert (await client.post("/v1/process", json=_body("s", 1))).status_code == 429
        await first
        metrics = (await client.get("/metrics")).text
    assert "sts_queue_full_total 1.0" in metrics
    assert 'sts_fragments_total{code="QUEUE_FULL"' not in metrics  # a 429, not a fragment answer
