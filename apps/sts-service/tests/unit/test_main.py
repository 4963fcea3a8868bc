from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shared_utils.contract import HEALTH_PATH
from sts_service import main as main_module
from sts_service.app import create_app
from sts_service.config import StsSettings
from sts_service.http_guard import GuardedHttpProtocol
from sts_service.main import EXIT_BAD_SETTINGS, main, uvicorn_config


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_bad_settings_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STS_PORT", "eighty")
    assert main([]) == EXIT_BAD_SETTINGS
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("sts-service: invalid settings: STS_PORT: ")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sts-service 0.1.0 (")


def test_help_lists_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "STS_MAX_INFLIGHT" in capsys.readouterr().out


def _stop_when_healthy(port: int, signum: signal.Signals, seen: list[int]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=1)
            seen.append(response.status_code)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal_then_exits_0(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    signum: signal.Signals,
    free_port: Callable[[], int],
) -> None:
    port = free_port()
    monkeypatch.setenv("STS_PORT", str(port))
    monkeypatch.setenv("STS_LOG_FORMAT", "json")
    seen: list[int] = []
    stopper = threading.Thread(target=_stop_when_healthy, args=(port, signum, seen))
    stopper.start()
    with caplog.at_level(logging.INFO):
        code = main([])
    stopper.join()
    assert code == 0
    assert seen == [200]
    messages = [r.getMessage() for r in caplog.records]
    assert f"sts-service listening on http://127.0.0.1:{port}" in messages
    assert f"sts-service stopped ({signum.name})" in messages
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_port_in_use_exits_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("STS_PORT", str(taken.getsockname()[1]))
        assert main([]) == main_module.EXIT_START_FAILED
    assert any("could not start" in r.getMessage() for r in caplog.records)


def test_reload_runs_uvicorn_with_the_import_string_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr("sts_service.main.uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setenv("STS_RELOAD", "true")
    monkeypatch.setenv("STS_PORT", "8123")
    assert main([]) == 0
    [(app, kwargs)] = calls
    assert app == "sts_service.app:app_factory"
    assert kwargs["factory"] is True and kwargs["reload"] is True
    assert kwargs["port"] == 8123 and kwargs["host"] == "127.0.0.1"
    reload_dirs = kwargs["reload_dirs"]
    assert isinstance(reload_dirs, list)
    assert [Path(d).name for d in reload_dirs] == ["sts_service", "shared_utils", "shared_audio"]
    # The same options as without reload; the protocol by import string (read in the new
    # process from the same environment, so the head limits hold there too).
    assert kwargs["http"] == "sts_service.http_guard:FromEnvironment"
    assert kwargs["timeout_keep_alive"] == 5 and kwargs["limit_concurrency"] == 512
    assert kwargs["log_config"] is None and kwargs["access_log"] is False


def test_uvicorn_config_carries_every_connection_limit() -> None:
    settings = StsSettings(
        port=8124,
        max_header_bytes=2048,
        header_timeout_s=3.5,
        keep_alive_timeout_s=7,
        max_connections=40,
    )
    config = uvicorn_config(create_app(settings), settings)
    assert (config.host, config.port) == ("127.0.0.1", 8124)
    assert (config.timeout_keep_alive, config.limit_concurrency) == (7, 40)
    assert isinstance(config.http, type) and issubclass(config.http, GuardedHttpProtocol)
    assert (config.http.max_head_bytes, config.http.head_timeout_s) == (2048, 3.5)
    # The defaults of the protocol itself (reload mode) are the settings' defaults.
    defaults = StsSettings()
    assert GuardedHttpProtocol.max_head_bytes == defaults.max_header_bytes
    assert GuardedHttpProtocol.head_timeout_s == defaults.header_timeout_s


def test_app_factory_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sts_service.app import app_factory

    monkeypatch.setenv("STS_FAULT_ENABLED", "1")
    app = app_factory()
    assert app.state.settings.fault_enabled is True
    assert app.state.pipeline.asr.name == "faulty(echo)"
