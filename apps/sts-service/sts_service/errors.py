"""Every error answer is the contract's `ErrorResponse`, and bad input never gives a 5xx.

FastAPI's defaults (``{"detail": ...}`` bodies, 422 for invalid JSON) are replaced:

* invalid JSON -> 400 ``INVALID_REQUEST``;
* a missing or wrong field -> 422 ``INVALID_REQUEST``, or ``INVALID_AUDIO`` when every problem
  is inside ``audio``; the message names each field by its path, e.g. ``audio.data_base64``;
* other HTTP errors (404, 405, ...) -> their status with ``INVALID_REQUEST``;
* anything unexpected -> 500 (a bug; logged with its traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared_utils.contract import ErrorCode, ErrorInfo, ErrorResponse, Stage

logger = logging.getLogger(__name__)

#: Status codes and the contract code they carry when raised as an HTTPException.
_HTTP_CODES: dict[int, ErrorCode] = {
    413: ErrorCode.FRAGMENT_TOO_LARGE,
    429: ErrorCode.QUEUE_FULL,
}

#: ``Retry-After`` of every 429 QUEUE_FULL, in seconds: about one fragment's processing time.
QUEUE_FULL_RETRY_AFTER_S = "1"

_MAX_ERRORS_LISTED = 5
_MAX_INPUT_REPR = 40


def error_response(
    status_code: int,
    code: ErrorCode,
    message: str,
    *,
    stage: Stage | None = "request",
    headers: dict[str, str] | None = None,
) -> Response:
    """A contract `ErrorResponse` with the given HTTP status: the one way an error is sent.

    Routes return it, exception handlers return it, and middleware sends it as the ASGI app
    it is (``await error_response(...)(scope, receive, send)``).
    """
    return Response(
        content=ErrorResponse(error=ErrorInfo.of(code, message, stage)).model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def describe_validation_errors(errors: Sequence[Any]) -> tuple[int, ErrorCode, str]:
    """Turn pydantic/FastAPI validation errors into (HTTP status, code, message).

    The message names every field at fault by its dotted path inside the body, e.g.
    ``audio.data_base64: data_base64 is not valid base64``.

    Example:
        >>> describe_validation_errors(
        ...     [{"type": "missing", "loc": ("body", "stream_id"), "msg": "Field required"}]
        ... )
        (422, <ErrorCode.INVALID_REQUEST: 'INVALID_REQUEST'>, 'stream_id: Field required')
    """
    if not errors:
        return 422, ErrorCode.INVALID_REQUEST, "request is invalid"
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            where = _json_position(error.get("loc", ()))
            detail = f": {reason}" if reason else ""
            return 400, ErrorCode.INVALID_REQUEST, f"request body is not valid JSON{where}{detail}"
    parts: list[str] = []
    audio_only = True
    for index, error in enumerate(errors):
        path = _field_path(error.get("loc", ()))
        # A problem with the audio's content, not a missing `audio` object.
        about_audio = path[:1] == ("audio",) and (len(path) > 1 or error.get("type") != "missing")
        audio_only = audio_only and about_audio
        if index < _MAX_ERRORS_LISTED:
            parts.append(f"{'.'.join(path) or 'request body'}: {_message(error)}")
    if len(errors) > _MAX_ERRORS_LISTED:
        parts.append(f"and {len(errors) - _MAX_ERRORS_LISTED} more problem(s)")
    code = ErrorCode.INVALID_AUDIO if audio_only else ErrorCode.INVALID_REQUEST
    return 422, code, "; ".join(parts)


def _field_path(loc: Sequence[Any]) -> tuple[str, ...]:
    parts = [str(part) for part in loc]
    if parts[:1] == ["body"]:
        parts = parts[1:]
    return tuple(parts)


def _json_position(loc: Sequence[Any]) -> str:
    position = [part for part in loc if isinstance(part, int)]
    return f" (at character {position[0]})" if position else ""


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if error.get("type") in ("missing", "extra_forbidden") or not _is_scalar(value):
        return message
    text = repr(value)
    if len(text) > _MAX_INPUT_REPR:
        text = text[: _MAX_INPUT_REPR - 3] + "..."
    return f"{message} (got {text})"


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, bytes, int, float))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    status, code, message = describe_validation_errors(errors)
    logger.info("rejected %s %s: %s", request.method, request.url.path, message)
    return error_response(status, code, message)


async def _http_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it only
        raise exc
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    if exc.status_code == 404:
        message = f"no route {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail) or f"HTTP {exc.status_code}"
    return error_response(
        exc.status_code, code, message, headers=dict(exc.headers) if exc.headers else None
    )


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        ErrorCode.MODEL_ERROR,
        f"internal error ({type(exc).__name__}); this is a bug, see the service log",
        stage=None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of `app` a contract `ErrorResponse`."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
