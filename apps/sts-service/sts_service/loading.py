"""Start-up loading of the pipeline's backends: a small state machine per stage.

Each stage starts `loading` (or `ready` when its backend has no model), then becomes `ready`
or `failed` with the reason. Models load in worker threads, together, while the server
already answers: until every stage is ready, a fragment gets a retryable error at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from shared_utils.contract import ErrorCode, ErrorInfo
from sts_service.backends.base import Backend, StageName

__all__ = ["LoadState", "StageLoad", "StageLoading"]

logger = logging.getLogger(__name__)


class LoadState(str, Enum):
    """Where a backend is in its start-up loading."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class StageLoad:
    """Start-up loading of one stage's backend: state, why it failed, how long it took."""

    state: LoadState
    detail: str | None = None
    seconds: float = 0.0


class StageLoading:
    """The load state of every stage of one pipeline.

    Args:
        backends: The pipeline's backends with their stage names, in pipeline order.
    """

    def __init__(self, backends: Sequence[tuple[StageName, Backend]]) -> None:
        self.backends = list(backends)
        #: Start-up loading of each stage; a backend without a model is ready at once.
        self.loads: dict[StageName, StageLoad] = {
            stage: StageLoad(LoadState.LOADING if backend.needs_loading() else LoadState.READY)
            for stage, backend in self.backends
        }
        self._created = time.monotonic()

    async def load(self) -> None:
        """Load every backend that needs it, together, each in a worker thread.

        Never raises for a backend's failure: the stage is marked failed with the reason,
        which the health report and every request then give.
        """
        await asyncio.gather(
            *(
                self._load_stage(stage, backend)
                for stage, backend in self.backends
                if self.loads[stage].state is LoadState.LOADING
            )
        )

    async def _load_stage(self, stage: StageName, backend: Backend) -> None:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(backend.load)
        except Exception as exc:
            logger.exception("%s backend %r failed to load", stage, backend.name)
            self.loads[stage] = StageLoad(
                LoadState.FAILED,
                f"failed to load: {type(exc).__name__}: {exc}",
                time.perf_counter() - started,
            )
            return
        seconds = time.perf_counter() - started
        self.loads[stage] = StageLoad(LoadState.READY, None, seconds)
        logger.info(
            "%s backend %r loaded in %.2f s",
            stage,
            backend.name,
            seconds,
            extra={"stage": stage, "load_s": round(seconds, 3)},
        )

    def state(self) -> LoadState:
        """FAILED if a backend failed to load, else LOADING while one is loading, else READY."""
        states = {load.state for load in self.loads.values()}
        if LoadState.FAILED in states:
            return LoadState.FAILED
        return LoadState.LOADING if LoadState.LOADING in states else LoadState.READY

    def not_ready(self) -> ErrorInfo | None:
        """Why the pipeline cannot serve yet (a backend loading or failed), or None."""
        for stage, backend in self.backends:
            load = self.loads[stage]
            if load.state is LoadState.LOADING:
                waited = time.monotonic() - self._created
                message = (
                    f"{stage} backend {backend.name!r} is still loading "
                    f"({waited:.1f} s since start-up); retry shortly"
                )
                return ErrorInfo.of(ErrorCode.MODEL_ERROR, message, stage)
            if load.state is LoadState.FAILED:
                message = f"{stage} backend {backend.name!r} {load.detail}"
                return ErrorInfo.of(ErrorCode.MODEL_ERROR, message, stage)
        return None

    def close(self) -> None:
        """Release every backend's processes and models (blocking); errors are logged."""
        for stage, backend in self.backends:
            try:
                backend.close()
            except Exception:
                logger.exception("closing %s backend %r failed", stage, backend.name)
