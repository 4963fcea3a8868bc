"""Structured logging on the standard library: JSON lines for machines, plain text for people.

Call `configure_logging` once at start-up; everywhere else use ``logging.getLogger(__name__)``
and pass structured fields with ``extra={...}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TextIO

from pydantic import BeforeValidator

__all__ = ["ConsoleFormatter", "JsonFormatter", "LogFormat", "LogLevel", "configure_logging"]


def _normalised(case: str) -> BeforeValidator:
    """Strip a text setting and set its case, so ``info`` and `` Info `` mean ``INFO``."""

    def normalise(value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.upper() if case == "upper" else value.lower()

    return BeforeValidator(normalise)


#: The log formats `configure_logging` writes (auto: console on a terminal, JSON otherwise).
#: As a settings field it takes any case (``JSON``), normalised here once for every service.
LogFormat = Annotated[Literal["json", "console", "auto"], _normalised("lower")]
#: The log levels a service setting accepts (what every service's `log_level` field is typed
#: as). As a settings field it takes any case (``info``), normalised here once.
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], _normalised("upper")]

#: Keys of every JSON line; an `extra=` field with one of these names becomes `extra_<name>`.
RESERVED_KEYS: frozenset[str] = frozenset(
    {"ts", "level", "logger", "service", "message", "exc", "stack"}
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn adds `color_message` (the message with ANSI colours) to its records: not data.
_RECORD_ATTRS: frozenset[str] = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName", "color_message"}

#: Marks the handler installed by configure_logging, so a second call replaces it.
_HANDLER_MARK = "_shared_utils_handler"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        fields[f"extra_{key}" if key in RESERVED_KEYS else key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys: ``ts`` (ISO 8601 UTC, milliseconds, ``Z``), ``level``, ``logger``, ``service``,
    ``message``, then every ``extra=`` field, then ``exc`` (the formatted traceback) and
    ``stack`` when present. Values JSON cannot encode are written with ``str()``.

    Example:
        >>> record = logging.LogRecord("app", logging.INFO, __file__, 1, "hi %s", ("you",), None)
        >>> json.loads(JsonFormatter("demo").format(record))["message"]
        'hi you'
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a single JSON line (no trailing newline)."""
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        payload.update(_extra_fields(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Formats a record as readable text: ``ts LEVEL logger: message key=value ...``.

    A traceback, if any, follows on the next lines.

    Example:
        >>> record = logging.LogRecord("app", logging.INFO, __file__, 1, "ready", None, None)
        >>> record.port = 8000
        >>> ConsoleFormatter("demo").format(record).split(" ", 1)[1]
        'INFO     app: ready port=8000'
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one line of text, plus traceback lines when present."""
        line = f"{_timestamp(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        extras = _extra_fields(record)
        if extras:
            line += " " + " ".join(f"{key}={value!r}" for key, value in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _resolve_level(level: str) -> int:
    name = level.strip().upper()
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(
            f"log level {level!r} is not valid; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    return value


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Send every log record to `stream` (default: stderr) as JSON lines or readable text.

    Installs one handler on the root logger. Calling again replaces that handler (new level,
    format or stream) and never adds a second one; handlers installed by others are left alone.

    Args:
        service: Name written in the ``service`` field of every line.
        level: Minimum level name (``DEBUG``, ``INFO``, ...; case-insensitive).
        fmt: ``json``, ``console``, or ``auto`` (console when `stream` is a terminal).
        stream: Where to write; ``None`` means ``sys.stderr``.

    Raises:
        ValueError: if `level` or `fmt` is not valid.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> configure_logging("demo", fmt="json", stream=out)
        >>> logging.getLogger("demo").info("started", extra={"port": 8000})
        >>> json.loads(out.getvalue())["port"]
        8000
    """
    numeric_level = _resolve_level(level)
    target = sys.stderr if stream is None else stream
    if fmt == "auto":
        isatty = getattr(target, "isatty", None)
        fmt = "console" if callable(isatty) and isatty() else "json"
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(service)
    elif fmt == "console":
        formatter = ConsoleFormatter(service)
    else:
        raise ValueError(f"log format {fmt!r} is not valid; use 'json', 'console' or 'auto'")

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
            existing.close()
    handler = logging.StreamHandler(target)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric_level)
