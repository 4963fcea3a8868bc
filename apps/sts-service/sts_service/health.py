"""Health of the pipeline's backends: what `/v1/health` and the `sts_backend_state` metric say.

A stage that is loading or failed to load is unavailable with that reason; a loaded one
answers for itself (`Backend.health`), and a health check that raises counts as unavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared_utils.contract import BackendHealth, HealthStatus
from sts_service.backends.base import BackendState, StageName
from sts_service.loading import LoadState, StageLoading

__all__ = ["BACKEND_STATES", "BackendReport", "backend_reports", "service_status"]

logger = logging.getLogger(__name__)

#: The states of the `sts_backend_state` metric.
BACKEND_STATES = ("loading", "ready", "unavailable")


@dataclass(frozen=True)
class BackendReport:
    """One backend's health, with its load state (which the contract's answer leaves out)."""

    stage: StageName
    name: str
    load: LoadState
    state: BackendState

    @property
    def metric_state(self) -> str:
        """One of `BACKEND_STATES`."""
        if self.load is LoadState.LOADING:
            return "loading"
        return "ready" if self.state.available else "unavailable"

    def contract(self) -> BackendHealth:
        """The contract's `BackendHealth` of this backend."""
        return BackendHealth.model_validate(
            {
                "stage": self.stage,
                "name": self.name,
                "available": self.state.available,
                "detail": self.state.detail,
            }
        )


def backend_reports(loading: StageLoading) -> list[BackendReport]:
    """Health of every backend, in pipeline order."""
    reports = []
    for stage, backend in loading.backends:
        load = loading.loads[stage]
        try:
            if load.state is not LoadState.READY:
                state = BackendState(False, load.detail or load.state.value)
            else:
                state = backend.health()
        except Exception as exc:
            logger.exception("health check of %s backend %r failed", stage, backend.name)
            state = BackendState(False, f"health check failed: {type(exc).__name__}: {exc}")
        reports.append(BackendReport(stage, backend.name, load.state, state))
    return reports


def service_status(loading: StageLoading, backends: list[BackendHealth]) -> HealthStatus:
    """`loading` while a model loads, `degraded` if one failed or a backend is unavailable."""
    state = loading.state()
    if state is LoadState.LOADING:
        return HealthStatus.LOADING
    if state is LoadState.FAILED or not all(backend.available for backend in backends):
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY
