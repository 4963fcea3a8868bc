"""Async sts-service client (transport only): one call per segment, never raising.

Per segment: the circuit breaker is asked first (an open breaker means fallback at once);
then the request is sent with one retry for retryable errors (`shared_utils.retry_async`),
everything inside one per-segment deadline. Requests are built and answers checked with the
shared contract models. The client returns what the service said -- an `StsAnswer` holding
a ``success`` or ``partial`` response -- or, for any way the call itself can go wrong, a
`DubResult` fallback with a reason. Whether an answer's audio is good enough to write is not
decided here but in :mod:`stream_worker.policy`.

Status handling: failed -> ``sts_error`` (retried once when the error is retryable);
timeout -> ``timeout``; success and partial -> an `StsAnswer`.

Busy is not broken: HTTP 429 (sts-service's ``QUEUE_FULL``) is asked again after its
``Retry-After`` for as long as the segment's deadline allows, without using the one retry and
without counting as a breaker failure; when the next try would come after the deadline the
segment falls back as ``busy`` at once, and so it does when the deadline passes with the try
after a busy answer still out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from shared_audio import AudioFormat
from shared_utils import CircuitBreaker, retry_async
from shared_utils.contract import (
    HEALTH_PATH,
    MAX_CONTEXT_MS,
    MAX_PREVIOUS_TEXT_CHARS,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    PROCESS_PATH,
    ErrorResponse,
    HealthResponse,
    ProcessConfig,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
)
from stream_worker import conversions
from stream_worker.outcome import DubResult, FallbackReason

logger = logging.getLogger(__name__)

#: Backoff before the one retry (seconds): short, the deadline is per segment.
RETRY_BASE_DELAY_S = 0.05
RETRY_MAX_DELAY_S = 0.25
#: Wait after a 429 without a usable ``Retry-After`` header (seconds).
DEFAULT_BUSY_WAIT_S = 0.5
#: Random extra wait after a 429, so workers told the same ``Retry-After`` do not all come
#: back in the same instant and fill the service's queue again at once.
BUSY_JITTER_S = 0.1


@dataclass(frozen=True)
class StsAnswer:
    """What sts-service answered for one segment, when it answered ``success`` or ``partial``.

    Attributes:
        response: The contract response, checked to be for the segment that was sent.
        round_trip_ms: From the first request to this answer.
        retries: Attempts after the first.
    """

    response: ProcessResponse
    round_trip_ms: float
    retries: int


class StsUnavailableError(Exception):
    """sts-service could not be reached or did not answer its health check properly."""


class _AttemptError(Exception):
    """One attempt failed; `retryable` decides whether the one retry is used."""

    def __init__(self, reason: FallbackReason, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


class _BusyError(Exception):
    """The service is at capacity (HTTP 429) and asks to be called again later."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


def _retry_after_s(response: httpx.Response) -> float:
    """The ``Retry-After`` delay in seconds (only the delta-seconds form is used)."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_BUSY_WAIT_S
    return seconds if 0 <= seconds < float("inf") else DEFAULT_BUSY_WAIT_S


def http_pool(
    base_url: str,
    token: str | None,
    limits: httpx.Limits,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The connection pool to sts-service: one per stream, or one shared by many streams."""
    # The bearer token sts-service may require (STS_AUTH_TOKENS); sent on every request.
    headers = {"authorization": f"Bearer {token}"} if token else None
    return httpx.AsyncClient(
        base_url=base_url, timeout=None, limits=limits, transport=transport, headers=headers
    )


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _AttemptError) and exc.retryable


class StsClient:
    """Sends segments of one stream to sts-service.

    Use as an async context manager (it owns an `httpx.AsyncClient`).

    Args:
        base_url: sts-service base URL, e.g. ``http://127.0.0.1:8000``.
        fmt: Audio format of the stream (S16LE).
        source_lang: Language spoken in the input.
        target_lang: Language to dub into.
        timeout_ms: Per-segment deadline, retry included (and the request's `timeout_ms`).
        breaker: The circuit breaker guarding the service.
        stream_id: Stream id sent with every fragment (a random one by default).
        max_connections: Connection pool size (the pipeline's in-flight limit).
        transport: An httpx transport to use instead of the network (tests).
        http: A connection pool shared with other streams (`--streams`), made for
            `base_url` and `token`; the client then neither makes nor closes one.
        clock: Monotonic clock in seconds.

    Example:
        >>> async def dub_one(samples):  # doctest: +SKIP
        ...     async with StsClient("http://127.0.0.1:8000", AudioFormat(16000, 1),
        ...                          source_lang="en", target_lang="es", timeout_ms=8000,
        ...                          breaker=CircuitBreaker()) as client:
        ...         return await client.send(0, samples)
    """

    def __init__(
        self,
        base_url: str,
        fmt: AudioFormat,
        *,
        source_lang: str,
        target_lang: str,
        timeout_ms: int,
        breaker: CircuitBreaker,
        stream_id: str | None = None,
        max_connections: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url
        self.format = fmt
        self.timeout_ms = timeout_ms
        self.breaker = breaker
        #: The contract version the service's health announced: what its requests may carry
        #: (`send_previous_text`, `send_context_audio`). 1.0 until a health check says more.
        self.service_contract = "1.0"
        self.stream_id = stream_id or f"stream-{uuid.uuid4().hex[:12]}"
        self._config = ProcessConfig(source_language=source_lang, target_language=target_lang)
        self._clock = clock
        self._owns_http = http is None
        if http is None:
            limits = httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
            http = http_pool(base_url, token, limits, transport)
        self._http = http

    @property
    def send_previous_text(self) -> bool:
        """Whether requests carry `previous_text` (a 1.1 service reads it)."""
        return speaks(self.service_contract, since=(1, 1))

    @property
    def send_context_audio(self) -> bool:
        """Whether requests carry `context_audio` (a 1.2 service reads it)."""
        return speaks(self.service_contract, since=(1, 2))

    async def __aenter__(self) -> StsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it is shared: its owner closes it)."""
        if self._owns_http:
            await self._http.aclose()

    async def health(self, timeout_s: float = 3.0) -> HealthResponse:
        """Fetch and validate ``GET /v1/health``.

        Raises:
            StsUnavailableError: if the service cannot be reached or answers badly; the
                message says which URL and what went wrong.
        """
        url = f"{self.base_url}{HEALTH_PATH}"
        try:
            response = await self._http.get(HEALTH_PATH, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise StsUnavailableError(
                f"sts-service at {url} is not reachable: {_describe(exc)}"
            ) from None
        if response.status_code != 200:
            raise StsUnavailableError(f"sts-service at {url} answered HTTP {response.status_code}")
        try:
            return HealthResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise StsUnavailableError(
                f"{url} did not answer like sts-service: {_first_error(exc)}"
            ) from None

    def build_request(
        self,
        sequence_number: int,
        samples: npt.NDArray[np.int16],
        timeout_ms: int | None = None,
        previous_text: str | None = None,
        context_audio: npt.NDArray[np.int16] | None = None,
    ) -> ProcessRequest:
        """The contract request for one segment (validated by the model itself).

        `previous_text` and `context_audio` go out only to a service that reads them
        (`send_previous_text`, `send_context_audio`): a service rejects fields it does not
        know. The end of each is kept when it is too long (what is nearest the cut matters).
        """
        context = None
        if previous_text and self.send_previous_text:
            context = previous_text[-MAX_PREVIOUS_TEXT_CHARS:]
        heard_before = None
        if context_audio is not None and context_audio.shape[0] and self.send_context_audio:
            longest = self.format.frames_for_ms(MAX_CONTEXT_MS)
            heard_before = conversions.to_wire(context_audio[-longest:], self.format)
        return ProcessRequest(
            fragment_id=f"{self.stream_id}-{sequence_number}",
            stream_id=self.stream_id,
            sequence_number=sequence_number,
            audio=conversions.to_wire(samples, self.format),
            config=self._config,
            timeout_ms=self.timeout_ms if timeout_ms is None else timeout_ms,
            previous_text=context,
            context_audio=heard_before,
        )

    async def send(
        self,
        sequence_number: int,
        samples: npt.NDArray[np.int16],
        *,
        deadline: float | None = None,
        previous_text: str | None = None,
        context_audio: npt.NDArray[np.int16] | None = None,
    ) -> StsAnswer | DubResult:
        """Send one segment. Never raises (except cancellation): failures are fallbacks.

        Args:
            sequence_number: The segment's position in the stream.
            samples: Its audio.
            deadline: Clock time by which the answer must be in (a live segment's output
                slot); the client's `timeout_ms` applies when it comes later or is None.
            previous_text: The transcript of the stream's previous speech segment, context
                for ASR across the cut (see `build_request`).
            context_audio: The stream's audio just before this segment, when the cut fell
                inside speech (see `build_request`).
        """
        if not self.breaker.allow_request():
            return DubResult.fallback(
                FallbackReason.CIRCUIT_OPEN,
                f"circuit open; next probe in {self.breaker.retry_after_s():.1f} s",
            )
        start = self._clock()
        budget_s = self.timeout_ms / 1000
        # Cut short by a live slot, a timeout says the service was slower than the slot,
        # not that it is broken: it leaves the breaker alone (busy is not broken).
        slot_bound = deadline is not None and deadline - start < budget_s
        if deadline is not None:
            budget_s = min(budget_s, deadline - start)
        if budget_s <= 0:
            return self._fallback(
                FallbackReason.TIMEOUT, "no time left before the segment's slot", start, 0
            )
        deadline = start + budget_s
        attempts = 0
        # The latest busy answer: if the deadline then passes with the next try still out,
        # the segment fell back because the service was busy (its wait took the time).
        last_busy: _BusyError | None = None
        # Encoded once: a retry or a busy wait sends the same audio with a new timeout.
        request = self.build_request(
            sequence_number, samples, _timeout_ms(budget_s * 1000), previous_text, context_audio
        )

        async def attempt() -> ProcessResponse:
            nonlocal attempts, last_busy
            while True:  # busy answers are asked again; anything else leaves the loop
                attempts += 1
                timeout_ms = _timeout_ms((deadline - self._clock()) * 1000)
                try:
                    return await self._send(request.model_copy(update={"timeout_ms": timeout_ms}))
                except _BusyError as busy:
                    last_busy = busy
                    wait_s = busy.retry_after_s + random.uniform(0, BUSY_JITTER_S)
                    if self._clock() + wait_s >= deadline:
                        raise _AttemptError(
                            FallbackReason.BUSY,
                            f"{busy.detail}; asked to retry after {busy.retry_after_s:g} s, "
                            "past the segment's deadline",
                            retryable=False,
                        ) from None
                    await asyncio.sleep(wait_s)

        try:
            response = await asyncio.wait_for(
                retry_async(
                    attempt,
                    attempts=2,
                    base_delay_s=RETRY_BASE_DELAY_S,
                    max_delay_s=RETRY_MAX_DELAY_S,
                    retry_if=_is_retryable,
                ),
                budget_s,
            )
        except asyncio.TimeoutError:
            if last_busy is not None:
                self.breaker.record_busy()
                return self._fallback(
                    FallbackReason.BUSY,
                    f"{last_busy.detail}; the try after it had no answer before the "
                    "segment's deadline",
                    start,
                    attempts,
                )
            if slot_bound:
                self.breaker.record_busy()
            else:
                self.breaker.record_failure()
            return self._fallback(
                FallbackReason.TIMEOUT,
                f"no answer within {budget_s * 1000:.0f} ms",
                start,
                attempts,
            )
        except _AttemptError as exc:
            if exc.reason is FallbackReason.BUSY or (
                slot_bound and exc.reason is FallbackReason.TIMEOUT
            ):
                self.breaker.record_busy()  # busy (or slower than the slot) is not broken
            elif exc.retryable:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # the service answered; the request was at fault
            return self._fallback(exc.reason, exc.detail, start, attempts)
        self.breaker.record_success()
        return StsAnswer(response, (self._clock() - start) * 1000, max(0, attempts - 1))

    def _fallback(
        self, reason: FallbackReason, detail: str, start: float, attempts: int
    ) -> DubResult:
        return DubResult.fallback(
            reason,
            detail,
            round_trip_ms=(self._clock() - start) * 1000,
            retries=max(0, attempts - 1),
        )

    async def _send(self, request: ProcessRequest) -> ProcessResponse:
        """One attempt: POST, then classify the answer. Raises `_AttemptError` on failure."""
        try:
            response = await self._http.post(
                PROCESS_PATH,
                content=request.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.TimeoutException as exc:  # pragma: no cover - the deadline comes first
            raise _AttemptError(FallbackReason.TIMEOUT, _describe(exc), retryable=True) from None
        except httpx.HTTPError as exc:
            raise _AttemptError(
                FallbackReason.UNREACHABLE, _describe(exc), retryable=True
            ) from None
        status = response.status_code
        if status == 200:
            return self._parse_success(request, response)
        if status == 429:
            raise _BusyError(_describe_http_error(response), _retry_after_s(response))
        if 400 <= status < 500:
            try:
                error = ErrorResponse.model_validate_json(response.content).error
            except ValidationError:
                raise _AttemptError(
                    FallbackReason.REJECTED,
                    f"HTTP {status} without a contract error body",
                    retryable=status in (408, 429),
                ) from None
            reason = FallbackReason.STS_ERROR if error.retryable else FallbackReason.REJECTED
            raise _AttemptError(
                reason,
                f"HTTP {status} {error.code.value}: {error.message}",
                retryable=error.retryable,
            )
        raise _AttemptError(FallbackReason.STS_ERROR, f"HTTP {status}", retryable=status >= 500)

    def _parse_success(self, request: ProcessRequest, response: httpx.Response) -> ProcessResponse:
        try:
            answer = ProcessResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise _AttemptError(
                FallbackReason.STS_ERROR,
                f"answer breaks the contract: {_first_error(exc)}",
                retryable=False,
            ) from None
        if (
            answer.fragment_id != request.fragment_id
            or answer.sequence_number != request.sequence_number
        ):
            raise _AttemptError(
                FallbackReason.STS_ERROR,
                f"answer is for fragment {answer.fragment_id!r} (sequence "
                f"{answer.sequence_number}), not {request.fragment_id!r}",
                retryable=False,
            )
        if answer.status in (ProcessStatus.FAILED, ProcessStatus.TIMEOUT):
            error = answer.error
            reason = (
                FallbackReason.TIMEOUT
                if answer.status is ProcessStatus.TIMEOUT
                else FallbackReason.STS_ERROR
            )
            detail = f"status={answer.status.value}"
            if error is not None:
                detail += f" {error.code.value} at {error.stage or '?'}: {error.message}"
            raise _AttemptError(
                reason, detail, retryable=error.retryable if error is not None else False
            )
        return answer


def _timeout_ms(remaining_ms: float) -> int:
    """The request's `timeout_ms` for the time left: within what the contract allows."""
    return min(MAX_TIMEOUT_MS, max(MIN_TIMEOUT_MS, int(remaining_ms)))


def speaks(contract_version: str, since: tuple[int, int]) -> bool:
    """Whether a service of this contract version reads what contract `since` added.

    Example:
        >>> [speaks(v, since=(1, 1)) for v in ("1.0", "1.1", "1.10", "2", "x")]
        [False, True, True, True, False]
    """
    try:
        parts = tuple(int(part) for part in contract_version.split("."))
    except ValueError:
        return False
    return parts >= since


def _describe_http_error(response: httpx.Response) -> str:
    try:
        error = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code} {error.code.value}: {error.message}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
