"""Retry with exponential backoff and jitter, and a circuit breaker, for calls to other services."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "retry_async",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)


def _is_exception(exc: BaseException) -> bool:
    """Default retry predicate: any `Exception` (never cancellation or KeyboardInterrupt)."""
    return isinstance(exc, Exception)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int = 2,
    base_delay_s: float = 0.1,
    max_delay_s: float = 2.0,
    retry_if: Callable[[BaseException], bool] = _is_exception,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await `fn()` up to `attempts` times, sleeping with exponential backoff and full jitter.

    The wait before retry *n* (1-based) is uniform in ``[0, min(max_delay_s,
    base_delay_s * 2 ** (n - 1))]``. Only exceptions for which `retry_if` returns True are
    retried; any other exception, and the last one once the attempts are used up, propagates
    unchanged. Each retry is logged at WARNING.

    Args:
        fn: Zero-argument coroutine function, called once per attempt.
        attempts: Total number of calls, at least 1 (the default 2 retries once).
        base_delay_s: Backoff scale in seconds (>= 0).
        max_delay_s: Upper bound of one wait in seconds (>= 0).
        retry_if: Whether an exception is worth another attempt.
        sleep: Awaitable sleep, replaceable in tests.

    Returns:
        The result of the first successful call.

    Raises:
        ValueError: if `attempts`, `base_delay_s` or `max_delay_s` is out of range.

    Example:
        >>> async def fetch() -> str:
        ...     return "ok"
        >>> asyncio.run(retry_async(fetch, attempts=3))
        'ok'
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if base_delay_s < 0 or max_delay_s < 0:
        raise ValueError(
            f"delays must be >= 0, got base_delay_s={base_delay_s}, max_delay_s={max_delay_s}"
        )

    def _log_retry(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "attempt %d/%d failed (%r); retrying in %.3f s",
            state.attempt_number,
            attempts,
            error,
            wait,
            extra={"attempt": state.attempt_number, "retry_in_s": wait},
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=base_delay_s, max=max_delay_s),
        retry=retry_if_exception(retry_if),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    async for attempt in retrying:  # pragma: no branch - ends by returning or raising
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


class CircuitState(str, Enum):
    """State of a circuit breaker."""

    CLOSED = "closed"  # requests flow; consecutive failures are counted
    OPEN = "open"  # requests are refused until the reset timeout has passed
    HALF_OPEN = "half_open"  # one probe request is let through to test the backend


class CircuitBreaker:
    """Stops calling a failing backend for a while, then probes it with one request.

    * CLOSED: every request is allowed; `failure_threshold` consecutive failures open it.
    * OPEN: requests are refused; after `reset_timeout_s` the next `allow_request()` moves to
      HALF_OPEN and lets exactly one probe through.
    * HALF_OPEN: further requests are refused while the probe runs. Its success closes the
      breaker, its failure opens it again for another `reset_timeout_s`. A probe that never
      reports back is replaced by a new one after `reset_timeout_s`.

    A success reported while OPEN (a late answer to a request let through before the breaker
    opened) changes nothing. Thread-safe.

    Args:
        failure_threshold: Consecutive failures that open the breaker (>= 1).
        reset_timeout_s: Seconds the breaker stays open before probing (>= 0).
        clock: Monotonic time source in seconds; inject a fake one in tests.

    Raises:
        ValueError: if a parameter is out of range.

    Example:
        >>> breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30.0)
        >>> breaker.record_failure()
        >>> breaker.state, breaker.allow_request()
        (<CircuitState.OPEN: 'open'>, False)
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must be >= 0, got {reset_timeout_s}")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker turns HALF_OPEN only in `allow_request`)."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        return self._failures

    def allow_request(self) -> bool:
        """Whether a request may be sent now. Call `record_success`/`record_failure` after it."""
        with self._lock:
            now = self._clock()
            if self._state is CircuitState.CLOSED:
                return True
            if self._state is CircuitState.OPEN:
                if now - self._opened_at < self.reset_timeout_s:
                    return False
                self._state = CircuitState.HALF_OPEN
                self._probe_started_at = now
                logger.info("circuit half-open: letting one probe through")
                return True
            # HALF_OPEN: one probe at a time, unless the last one never reported back.
            if (
                self._probe_started_at is not None
                and now - self._probe_started_at < self.reset_timeout_s
            ):
                return False
            self._probe_started_at = now
            return True

    def retry_after_s(self) -> float:
        """Seconds until a refused request could be let through (0 when one would be now)."""
        with self._lock:
            if self._state is CircuitState.CLOSED:
                return 0.0
            started = (
                self._opened_at if self._state is CircuitState.OPEN else self._probe_started_at
            )
            if started is None:  # pragma: no cover - HALF_OPEN always has a probe start
                return 0.0
            return max(0.0, self.reset_timeout_s - (self._clock() - started))

    def record_success(self) -> None:
        """Report a successful request: closes a HALF_OPEN breaker, resets the failure count."""
        with self._lock:
            if self._state is CircuitState.OPEN:
                return
            if self._state is CircuitState.HALF_OPEN:
                logger.info("circuit closed: probe succeeded")
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._probe_started_at = None

    def record_busy(self) -> None:
        """Report that the backend answered "busy, come back later" (e.g. HTTP 429).

        Busy is not broken: the backend answered, so the failure count is left alone, and a
        HALF_OPEN probe that met a busy backend frees its slot so the next request probes
        again at once instead of after `reset_timeout_s`.
        """
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probe_started_at = None

    def record_failure(self) -> None:
        """Report a failed request: may open the breaker (always, from HALF_OPEN)."""
        with self._lock:
            self._failures += 1
            if self._state is CircuitState.HALF_OPEN:
                self._open("probe failed")
            elif self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold:
                self._open(f"{self._failures} consecutive failures")

    def _open(self, reason: str) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._probe_started_at = None
        logger.warning(
            "circuit open: %s; refusing requests for %.1f s",
            reason,
            self.reset_timeout_s,
            extra={"circuit_failures": self._failures},
        )
