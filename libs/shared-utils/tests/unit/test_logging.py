from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone

import pytest
from pydantic_settings import SettingsConfigDict

from shared_utils import ServiceSettings, SettingsError, configure_logging, load_settings
from shared_utils.logging import ConsoleFormatter, JsonFormatter, LogFormat, LogLevel

pytestmark = pytest.mark.usefixtures("restore_root_logger")


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "_shared_utils_handler", False)]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_standard_keys() -> None:
    out = io.StringIO()
    configure_logging("sts-service", fmt="json", stream=out)
    logging.getLogger("sts_service.app").info("hello %s", "world")
    (line,) = _lines(out)
    assert line["level"] == "INFO"
    assert line["logger"] == "sts_service.app"
    assert line["service"] == "sts-service"
    assert line["message"] == "hello world"
    ts = str(line["ts"])
    assert ts.endswith("Z")
    parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 60


def test_json_one_object_per_line_even_with_newlines_in_message() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)
    logging.getLogger("x").warning("two\nlines")
    assert len(out.getvalue().splitlines()) == 1
    assert _lines(out)[0]["message"] == "two\nlines"


def test_extra_fields_are_included() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)
    logging.getLogger("x").info(
        "fragment done", extra={"fragment_id": "f-1", "latency_ms": 12.5, "ok": True}
    )
    line = _lines(out)[0]
    assert line["fragment_id"] == "f-1"
    assert line["latency_ms"] == 12.5
    assert line["ok"] is True


def test_extra_fields_that_clash_with_reserved_keys_are_renamed() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)
    logging.getLogger("x").info("m", extra={"service": "other", "level": 3})
    line = _lines(out)[0]
    assert line["service"] == "svc"
    assert line["level"] == "INFO"
    assert line["extra_service"] == "other"
    assert line["extra_level"] == 3


def test_unserialisable_extra_is_written_as_text() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)

    class Thing:
        def __str__(self) -> str:
            return "<thing>"

    logging.getLogger("x").info("m", extra={"thing": Thing()})
    assert _lines(out)[0]["thing"] == "<thing>"


def test_exception_is_written_as_exc_text() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    line = _lines(out)[0]
    assert line["level"] == "ERROR"
    exc = str(line["exc"])
    assert exc.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in exc


def test_stack_info_is_written() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="json", stream=out)
    logging.getLogger("x").info("where", stack_info=True)
    assert "Stack (most recent call last)" in str(_lines(out)[0]["stack"])


def test_level_filters_records() -> None:
    out = io.StringIO()
    configure_logging("svc", level="warning", fmt="json", stream=out)
    log = logging.getLogger("x")
    log.info("hidden")
    log.warning("shown")
    assert [line["message"] for line in _lines(out)] == ["shown"]


def test_configure_twice_replaces_the_handler(restore_root_logger: logging.Logger) -> None:
    first, second = io.StringIO(), io.StringIO()
    before = len(restore_root_logger.handlers)
    configure_logging("svc", fmt="json", stream=first)
    configure_logging("svc", level="DEBUG", fmt="json", stream=second)
    configure_logging("svc", level="DEBUG", fmt="json", stream=second)
    assert len(restore_root_logger.handlers) == before + 1
    assert len(_ours(restore_root_logger)) == 1
    logging.getLogger("x").debug("once")
    assert first.getvalue() == ""
    assert [line["message"] for line in _lines(second)] == ["once"]


def test_foreign_handlers_are_kept(restore_root_logger: logging.Logger) -> None:
    foreign = logging.NullHandler()
    restore_root_logger.addHandler(foreign)
    configure_logging("svc", fmt="json", stream=io.StringIO())
    configure_logging("svc", fmt="json", stream=io.StringIO())
    assert foreign in restore_root_logger.handlers


def test_console_mode_is_readable() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="console", stream=out)
    logging.getLogger("sts_service.app").info("listening", extra={"port": 8000})
    text = out.getvalue().rstrip("\n")
    ts, rest = text.split(" ", 1)
    assert ts.endswith("Z")
    assert rest == "INFO     sts_service.app: listening port=8000"
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_mode_shows_traceback_and_stack() -> None:
    out = io.StringIO()
    configure_logging("svc", fmt="console", stream=out)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").error("oops", exc_info=True, stack_info=True)
    text = out.getvalue()
    assert "ERROR    x: oops\nTraceback (most recent call last):" in text
    assert "ValueError: bad" in text
    assert "Stack (most recent call last)" in text


def test_auto_picks_console_for_a_terminal() -> None:
    out = TtyStream()
    configure_logging("svc", fmt="auto", stream=out)
    logging.getLogger("x").info("hi")
    assert " INFO     x: hi" in out.getvalue()


def test_auto_picks_json_otherwise() -> None:
    out = io.StringIO()
    configure_logging("svc", stream=out)
    logging.getLogger("x").info("hi")
    assert _lines(out)[0]["message"] == "hi"


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc", fmt="json")
    logging.getLogger("x").info("to stderr")
    captured = capsys.readouterr()
    assert json.loads(captured.err.splitlines()[-1])["message"] == "to stderr"
    assert captured.out == ""


def test_invalid_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level 'LOUD' is not valid"):
        configure_logging("svc", level="LOUD", stream=io.StringIO())


def test_invalid_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log format 'xml' is not valid"):
        configure_logging("svc", fmt="xml", stream=io.StringIO())  # type: ignore[arg-type]  # invalid on purpose


def test_formatters_use_cached_exc_text() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, None)
    record.exc_text = "Traceback: cached"
    assert json.loads(JsonFormatter("svc").format(record))["exc"] == "Traceback: cached"
    assert ConsoleFormatter("svc").format(record).endswith("\nTraceback: cached")


class _LogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TSLOG_")

    log_level: LogLevel = "INFO"
    log_format: LogFormat = "auto"


@pytest.mark.parametrize(
    ("level", "fmt", "expected"),
    [
        ("info", "JSON", ("INFO", "json")),
        (" Warning ", "Console", ("WARNING", "console")),
        ("DEBUG", "auto", ("DEBUG", "auto")),
    ],
)
def test_any_service_takes_log_level_and_format_in_any_case(
    monkeypatch: pytest.MonkeyPatch, level: str, fmt: str, expected: tuple[str, str]
) -> None:
    # WORKER_LOG_LEVEL=info used to be refused while STS_LOG_LEVEL=info was upper-cased.
    monkeypatch.setenv("TSLOG_LOG_LEVEL", level)
    monkeypatch.setenv("TSLOG_LOG_FORMAT", fmt)
    settings = load_settings(_LogSettings)
    assert (settings.log_level, settings.log_format) == expected


def test_an_unknown_log_level_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSLOG_LOG_LEVEL", "verbose")
    with pytest.raises(SettingsError, match="TSLOG_LOG_LEVEL"):
        load_settings(_LogSettings)
