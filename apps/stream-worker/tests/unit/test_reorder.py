from __future__ import annotations

import asyncio
import time

import numpy as np
import numpy.typing as npt
import pytest

from stream_worker.outcome import DubResult, FallbackReason
from stream_worker.reorder import Emitted, ReorderBuffer, run_emitter


def orig(value: int) -> npt.NDArray[np.int16]:
    return np.full((4, 1), value, dtype=np.int16)


def dubbed(value: int) -> DubResult:
    return DubResult(audio=np.full((4, 1), -value, dtype=np.int16), reason=None)


def filled(n: int, deadline: float = 10.0) -> ReorderBuffer:
    buf = ReorderBuffer()
    for seq in range(n):
        buf.add(seq, orig(seq + 1), ready_at=0.0, deadline=deadline)
    return buf


def test_emits_strictly_in_sequence_whatever_the_arrival_order() -> None:
    buf = filled(4)
    for seq in (3, 1, 2):
        assert buf.resolve(seq, dubbed(seq + 1))
    assert buf.pop_ready(now=1.0) == []
    buf.resolve(0, dubbed(1))
    out = buf.pop_ready(now=1.0)
    assert [e.sequence_number for e in out] == [0, 1, 2, 3]
    assert all(e.dubbed for e in out)
    assert [int(e.samples[0, 0]) for e in out] == [-1, -2, -3, -4]


def test_gap_blocks_later_segments_only_until_its_deadline() -> None:
    buf = filled(3, deadline=5.0)
    buf.resolve(1, dubbed(2))
    buf.resolve(2, dubbed(3))
    assert buf.next_deadline() == 5.0
    assert buf.pop_ready(now=4.99) == []
    out = buf.pop_ready(now=5.0)
    assert [(e.sequence_number, e.result.reason) for e in out] == [
        (0, FallbackReason.LATE),
        (1, None),
        (2, None),
    ]
    assert np.array_equal(out[0].samples, orig(1))  # the original audio
    assert buf.next_deadline() is None


def test_late_arrival_after_fallback_is_dropped_and_counted() -> None:
    buf = filled(2, deadline=1.0)
    [first] = buf.pop_ready(now=1.0)[:1]
    assert first.result.reason is FallbackReason.LATE
    assert buf.resolve(0, dubbed(1)) is False
    assert buf.resolve(1, dubbed(2)) is False  # also emitted already at the same deadline
    assert buf.late_dropped == 2


def test_each_segment_has_its_own_deadline() -> None:
    buf = ReorderBuffer()
    buf.add(0, orig(1), ready_at=0.0, deadline=1.0)
    buf.add(1, orig(2), ready_at=0.5, deadline=3.0)
    assert [e.sequence_number for e in buf.pop_ready(now=1.5)] == [0]
    assert buf.pop_ready(now=2.9) == []
    assert [e.result.reason for e in buf.pop_ready(now=3.0)] == [FallbackReason.LATE]


def test_expire_all_brings_deadlines_forward_with_the_given_reason() -> None:
    buf = filled(3, deadline=100.0)
    buf.resolve(1, dubbed(2))
    buf.expire_all(at=2.0, reason=FallbackReason.SHUTDOWN)
    out = buf.pop_ready(now=2.0)
    assert [e.result.reason for e in out] == [
        FallbackReason.SHUTDOWN,
        None,
        FallbackReason.SHUTDOWN,
    ]


def test_finished_only_when_closed_and_empty() -> None:
    buf = filled(1)
    buf.close()
    assert buf.closed and not buf.finished and buf.pending == 1
    buf.resolve(0, dubbed(1))
    buf.pop_ready(now=0.0)
    assert buf.finished


def test_misuse_is_refused_with_a_clear_error() -> None:
    buf = filled(1)
    with pytest.raises(ValueError, match="out of order; expected 1"):
        buf.add(5, orig(1), ready_at=0, deadline=1)
    with pytest.raises(ValueError, match="never added"):
        buf.resolve(7, dubbed(1))
    buf.resolve(0, dubbed(1))
    with pytest.raises(ValueError, match="already has a result"):
        buf.resolve(0, dubbed(1))
    buf.close()
    with pytest.raises(ValueError, match="closed"):
        buf.add(1, orig(1), ready_at=0, deadline=1)


async def test_emitter_waits_for_deadlines_on_the_event_loop() -> None:
    buf = ReorderBuffer()
    wakeup = asyncio.Event()
    written: list[Emitted] = []
    start = time.monotonic()
    buf.add(0, orig(1), ready_at=start, deadline=start + 0.2)
    buf.add(1, orig(2), ready_at=start, deadline=start + 5)
    buf.resolve(1, dubbed(2))
    buf.close()
    await asyncio.wait_for(run_emitter(buf, written.append, wakeup, time.monotonic), 2)
    elapsed = time.monotonic() - start
    assert [e.sequence_number for e in written] == [0, 1]
    assert written[0].result.reason is FallbackReason.LATE
    assert 0.2 <= elapsed < 2  # waited for the deadline, not for segment 1's


async def test_emitter_wakes_up_on_resolve() -> None:
    buf = ReorderBuffer()
    wakeup = asyncio.Event()
    written: list[Emitted] = []
    now = time.monotonic()
    buf.add(0, orig(1), ready_at=now, deadline=now + 30)
    buf.close()
    task = asyncio.create_task(run_emitter(buf, written.append, wakeup, time.monotonic))
    await asyncio.sleep(0.05)
    assert written == []
    buf.resolve(0, dubbed(1))
    wakeup.set()
    await asyncio.wait_for(task, 1)
    assert [e.dubbed for e in written] == [True]
