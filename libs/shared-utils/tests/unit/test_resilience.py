from __future__ import annotations

import asyncio
import logging

import pytest

from shared_utils import CircuitBreaker, CircuitState, retry_async


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("down")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read the state through a call, so mypy does not narrow it across transitions."""
    return breaker.state


# ----------------------------------------------------------------------------- retry_async


async def test_success_first_time_does_not_sleep() -> None:
    sleep = FakeSleep()
    fn = Flaky(0)
    assert await retry_async(fn, sleep=sleep) == "ok"
    assert fn.calls == 1
    assert sleep.delays == []


async def test_default_retries_once() -> None:
    sleep = FakeSleep()
    fn = Flaky(1)
    assert await retry_async(fn, sleep=sleep) == "ok"
    assert fn.calls == 2
    assert len(sleep.delays) == 1


async def test_gives_up_after_attempts_and_reraises_the_last_error() -> None:
    sleep = FakeSleep()
    fn = Flaky(10)
    with pytest.raises(ConnectionError, match="down"):
        await retry_async(fn, attempts=4, sleep=sleep)
    assert fn.calls == 4
    assert len(sleep.delays) == 3


async def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    sleep = FakeSleep()
    with pytest.raises(ConnectionError):
        await retry_async(Flaky(100), attempts=8, base_delay_s=0.1, max_delay_s=1.0, sleep=sleep)
    assert len(sleep.delays) == 7
    for n, delay in enumerate(sleep.delays, start=1):
        assert 0.0 <= delay <= min(1.0, 0.1 * 2 ** (n - 1)) + 1e-9


async def test_jitter_varies_the_delays() -> None:
    delays: list[float] = []
    for _ in range(20):
        sleep = FakeSleep()
        await retry_async(Flaky(1), attempts=2, base_delay_s=1.0, max_delay_s=1.0, sleep=sleep)
        delays.extend(sleep.delays)
    assert len(set(delays)) > 1


async def test_zero_delay_never_waits() -> None:
    sleep = FakeSleep()
    await retry_async(Flaky(2), attempts=3, base_delay_s=0.0, sleep=sleep)
    assert sleep.delays == [0.0, 0.0]


async def test_real_sleep_with_tiny_delays() -> None:
    fn = Flaky(2)
    assert await retry_async(fn, attempts=3, base_delay_s=0.001, max_delay_s=0.002) == "ok"
    assert fn.calls == 3


async def test_non_retryable_exception_is_not_retried() -> None:
    sleep = FakeSleep()
    fn = Flaky(5, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        await retry_async(
            fn,
            attempts=5,
            retry_if=lambda exc: isinstance(exc, ConnectionError),
            sleep=sleep,
        )
    assert fn.calls == 1
    assert sleep.delays == []


async def test_cancellation_is_not_retried_by_default() -> None:
    fn = Flaky(5, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await retry_async(fn, attempts=3, sleep=FakeSleep())
    assert fn.calls == 1


async def test_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="shared_utils.resilience")
    await retry_async(Flaky(1), attempts=2, sleep=FakeSleep())
    (record,) = [r for r in caplog.records if r.name == "shared_utils.resilience"]
    assert "attempt 1/2 failed" in record.getMessage()
    assert record.__dict__["attempt"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be >= 1, got 0"),
        ({"base_delay_s": -1.0}, "delays must be >= 0"),
        ({"max_delay_s": -0.5}, "delays must be >= 0"),
    ],
)
async def test_invalid_parameters_are_rejected(kwargs: dict[str, float], message: str) -> None:
    fn = Flaky(0)
    with pytest.raises(ValueError, match=message):
        await retry_async(fn, **kwargs)  # type: ignore[arg-type]  # parametrized kwargs
    assert fn.calls == 0


# ---------------------------------------------------------------------------- CircuitBreaker


def test_breaker_starts_closed_and_allows() -> None:
    breaker = CircuitBreaker()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow_request()
    assert breaker.retry_after_s() == 0.0


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow_request()
    assert breaker.retry_after_s() == pytest.approx(30.0)


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED


def test_open_half_open_closed() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30.0, clock=clock)
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    clock.advance(29.9)
    assert not breaker.allow_request()
    assert state(breaker) is CircuitState.OPEN
    assert breaker.retry_after_s() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow_request()  # the one probe
    assert state(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allow_request()  # no second probe while the first runs
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow_request()
    assert breaker.allow_request()


def test_failed_probe_reopens_for_another_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow_request()
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.record_failure()  # one failure is enough in half-open
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow_request()
    clock.advance(9.0)
    assert not breaker.allow_request()
    clock.advance(1.0)
    assert breaker.allow_request()
    assert state(breaker) is CircuitState.HALF_OPEN


def test_lost_probe_is_replaced_after_the_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow_request()
    clock.advance(2.0)
    assert not breaker.allow_request()
    assert breaker.retry_after_s() == pytest.approx(3.0)
    clock.advance(3.0)
    assert breaker.allow_request()
    assert state(breaker) is CircuitState.HALF_OPEN


def test_late_success_while_open_changes_nothing() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow_request()


def test_late_failure_while_open_does_not_extend_the_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(4.0)
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.allow_request()


def test_breaker_opening_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shared_utils.resilience")
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=clock)
    breaker.record_failure()
    clock.advance(1.0)
    breaker.allow_request()
    breaker.record_success()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("circuit open: 1 consecutive failures")
    assert messages[1] == "circuit half-open: letting one probe through"
    assert messages[2] == "circuit closed: probe succeeded"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"reset_timeout_s": -1.0}, "reset_timeout_s must be >= 0"),
    ],
)
def test_breaker_rejects_invalid_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]  # parametrized kwargs


def test_default_parameters_are_5_failures_and_30_s_open() -> None:
    breaker = CircuitBreaker()
    assert breaker.failure_threshold == 5
    assert breaker.reset_timeout_s == 30.0


def test_busy_answers_never_open_the_breaker_nor_reset_its_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10.0, clock=FakeClock())
    breaker.record_failure()
    for _ in range(10):
        breaker.record_busy()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.consecutive_failures == 1  # busy is neither a failure nor a success
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN


def test_busy_probe_frees_the_probe_slot_and_keeps_the_breaker_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_busy()  # while OPEN: changes nothing
    assert not breaker.allow_request()
    clock.advance(10.0)
    assert breaker.allow_request()  # the probe
    assert not breaker.allow_request()
    breaker.record_busy()
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow_request()  # a new probe at once, not after another 10 s
