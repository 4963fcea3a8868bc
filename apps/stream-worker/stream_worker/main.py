"""Command line of stream-worker (console script `stream-worker`, `python -m stream_worker`).

Exit codes: 0 when the output was written completely (also after SIGINT/SIGTERM); 2 for an
invalid option, setting or input, or an unreachable sts-service with ``--require-sts``; 1 when
the input broke off with an error or the output could not be written (the output written so
far is still a valid file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

from shared_utils import CircuitBreaker, SettingsError, configure_logging, load_settings
from shared_utils.contract import CONTRACT_VERSION
from stream_worker import __version__
from stream_worker.client import StsClient, StsUnavailableError
from stream_worker.config import WorkerSettings
from stream_worker.endpoints import (
    EndpointError,
    Input,
    check_output,
    media_summary,
    open_input,
    open_sink,
)
from stream_worker.pipeline import Pipeline, PipelineOptions, PipelineOutcome
from stream_worker.sink import Sink

logger = logging.getLogger(__name__)

PROG = "stream-worker"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
STDIO = "-"


class UsageError(Exception):
    """Invalid options, settings or input: one line for stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        """Turn an argparse error into a `UsageError`."""
        raise UsageError(message)


@dataclass(frozen=True)
class _Option:
    field: str
    flags: tuple[str, ...]
    help: str
    kind: str = "str"  # str | int | bool | choice
    metavar: str | None = None
    choices: tuple[str, ...] = ()


#: Every option; each also comes from WORKER_<FIELD> (see WorkerSettings). CLI wins.
OPTIONS: tuple[_Option, ...] = (
    _Option(
        "input",
        ("-i", "--input"),
        "media file or live URL (anything FFmpeg reads), or - for raw PCM S16LE on stdin",
        metavar="PATH|URL|-",
    ),
    _Option(
        "output",
        ("-o", "--output"),
        "media file (.mp4 .mkv .ts .flv .wav ...), live URL (rtmp:// srt:// udp://), or - "
        "(raw PCM S16LE, or a container with --output-format)",
        metavar="PATH|URL|-",
    ),
    _Option("sample_rate", ("--sample-rate",), "sample rate of raw stdin input (Hz)", "int"),
    _Option("channels", ("--channels",), "channel count of raw stdin input", "int"),
    _Option("sts_url", ("--sts-url",), "base URL of sts-service", metavar="URL"),
    _Option("sts_sample_rate", ("--sts-sample-rate",), "rate sent to sts-service (Hz)", "int"),
    _Option("sts_channels", ("--sts-channels",), "channels sent to sts-service", "int"),
    _Option("audio_track", ("--audio-track",), "audio track to dub (0: the first)", "int"),
    _Option(
        "output_format",
        ("--output-format",),
        "FFmpeg muxer of the output (mp4, matroska, mpegts, flv, wav; default: from its name)",
        metavar="NAME",
    ),
    _Option(
        "keep_original_audio",
        ("--keep-original-audio",),
        "keep the original audio as a second track",
        "bool",
    ),
    _Option(
        "output_delay_ms",
        ("--output-delay-ms",),
        "live: fixed delay of the output behind the input (default: segment + timeout + 500)",
        "int",
    ),
    _Option(
        "read_timeout_ms",
        ("--read-timeout-ms",),
        "live: silence after which the source counts as dropped (ms)",
        "int",
    ),
    _Option("source_lang", ("--source-lang",), "language spoken in the input", metavar="LANG"),
    _Option("target_lang", ("--target-lang",), "language to dub into", metavar="LANG"),
    _Option("segment_ms", ("--segment-ms",), "segment length in ms", "int"),
    _Option("max_inflight", ("--max-inflight",), "requests in flight at most", "int"),
    _Option("timeout_ms", ("--timeout-ms",), "per-segment deadline in ms, retry included", "int"),
    _Option("realtime", ("--realtime",), "pace a file input at real time (simulate live)", "bool"),
    _Option(
        "require_sts", ("--require-sts",), "exit 2 if sts-service is unreachable at start", "bool"
    ),
    _Option(
        "breaker_failures",
        ("--breaker-failures",),
        "consecutive failures that open the circuit",
        "int",
    ),
    _Option(
        "breaker_reset_ms", ("--breaker-reset-ms",), "how long the circuit stays open (ms)", "int"
    ),
    _Option(
        "shutdown_grace_ms",
        ("--shutdown-grace-ms",),
        "on SIGINT/SIGTERM, wait this long for in-flight segments (ms)",
        "int",
    ),
    _Option(
        "stream_id",
        ("--stream-id",),
        "stream id sent to sts-service (default: random)",
        metavar="ID",
    ),
    _Option(
        "summary_json",
        ("--summary-json",),
        "also write the JSON summary to this file",
        metavar="PATH",
    ),
    _Option(
        "progress",
        ("--progress",),
        "progress on stderr (auto: when stderr is a terminal)",
        "choice",
        choices=("auto", "always", "never"),
    ),
    _Option(
        "log_level",
        ("--log-level",),
        "log level",
        "choice",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    _Option(
        "log_format",
        ("--log-format",),
        "log format (auto: console on a terminal)",
        "choice",
        choices=("json", "console", "auto"),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Every option defaults to None so settings fill what is not given."""
    parser = _Parser(
        prog=PROG,
        description="Dub an audio stream through sts-service without losing a sample. "
        "Every option can also be set as WORKER_<OPTION> (e.g. WORKER_STS_URL); "
        "the command line wins.",
    )
    for option in OPTIONS:
        env = WorkerSettings.env_var_for(option.field)
        help_text = f"{option.help} [{env}]"
        if option.kind == "bool":
            parser.add_argument(
                *option.flags,
                dest=option.field,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif option.kind == "int":
            parser.add_argument(
                *option.flags,
                dest=option.field,
                type=int,
                default=None,
                metavar="N",
                help=help_text,
            )
        elif option.kind == "choice":
            parser.add_argument(
                *option.flags,
                dest=option.field,
                choices=option.choices,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                *option.flags,
                dest=option.field,
                default=None,
                metavar=option.metavar,
                help=help_text,
            )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def parse_settings(argv: Sequence[str]) -> WorkerSettings:
    """Parse the command line over the `WORKER_` environment.

    Raises:
        UsageError: naming the option (or variable) at fault.
    """
    args = build_parser().parse_args(list(argv))
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    try:
        settings = load_settings(WorkerSettings, **overrides)
    except SettingsError as exc:
        message = str(exc)
        for option in OPTIONS:
            message = message.replace(f"{option.field} (override)", option.flags[-1])
        raise UsageError(message) from None
    if settings.input is None:
        raise UsageError("no input: give --input PATH or --input - (or set WORKER_INPUT)")
    if settings.output is None:
        raise UsageError("no output: give --output PATH or --output - (or set WORKER_OUTPUT)")
    return settings


async def _check_sts(client: StsClient, require: bool) -> None:
    try:
        health = await client.health()
    except StsUnavailableError as exc:
        if require:
            raise UsageError(f"{exc} (--require-sts)") from None
        logger.warning("%s; segments fall back to original audio until it answers", exc)
        return
    logger.info(
        "sts-service %s (revision %s) at %s is %s",
        health.version,
        health.git_revision,
        client.base_url,
        health.status.value,
    )
    if health.contract_version != CONTRACT_VERSION:
        logger.warning(
            "sts-service speaks contract %s, this worker %s",
            health.contract_version,
            CONTRACT_VERSION,
        )


async def _run(
    settings: WorkerSettings, source: Input, stderr: TextIO
) -> tuple[PipelineOutcome, Sink]:
    breaker = CircuitBreaker(
        failure_threshold=settings.breaker_failures,
        reset_timeout_s=settings.breaker_reset_ms / 1000,
    )
    async with StsClient(
        settings.sts_url,
        source.fmt,
        source_lang=settings.source_lang,
        target_lang=settings.target_lang,
        timeout_ms=settings.timeout_ms,
        breaker=breaker,
        stream_id=settings.stream_id,
        max_connections=settings.max_inflight,
    ) as client:
        await _check_sts(client, settings.require_sts)
        sink = open_sink(settings, source)
        show = settings.progress == "always" or (settings.progress == "auto" and stderr.isatty())
        pipeline = Pipeline(
            client,
            source.chunks,
            source.fmt,
            sink,
            PipelineOptions(
                segment_ms=settings.segment_ms,
                max_inflight=settings.max_inflight,
                timeout_ms=settings.timeout_ms,
                shutdown_grace_ms=settings.shutdown_grace_ms,
                max_delay_ms=settings.live_delay_ms if _is_live(source) else None,
            ),
            progress_stream=stderr,
            progress=show,
            total_s=source.total_s,
        )
        loop = asyncio.get_running_loop()
        installed = _install_signal_handlers(loop, pipeline.request_stop)
        try:
            outcome = await pipeline.run()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            sink.close()
        return outcome, sink


def _is_live(source: Input) -> bool:
    return source.media is not None and source.media.media.live


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None]
) -> list[int]:
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        installed.append(signum)
    return installed


def build_summary(
    settings: WorkerSettings,
    source: Input,
    outcome: PipelineOutcome,
    sink: Sink,
    cpu_s: float,
) -> dict[str, object]:
    """The JSON summary of a run."""
    audio_s = source.fmt.duration_s(outcome.input_frames)
    return outcome.stats.summary(
        {
            "input": settings.input,
            "output": settings.output,
            "sts_url": settings.sts_url,
            "sample_rate": source.fmt.sample_rate,
            "channels": source.fmt.channels,
            "segment_ms": settings.segment_ms,
            "input_frames": outcome.input_frames,
            "read_not_used_frames": source.stats.frames - outcome.input_frames,
            "output_frames": sink.frames_written,
            "audio_s": round(audio_s, 3),
            "wall_s": round(outcome.wall_s, 3),
            "cpu_s": round(cpu_s, 3),
            "real_time_factor": round(outcome.wall_s / audio_s, 4) if audio_s else None,
            "interrupted": outcome.interrupted,
            "input_error": outcome.input_error,
            "trailing_bytes_dropped": source.stats.trailing_bytes_dropped,
            "late_dropped": outcome.late_dropped,
            **media_summary(source, sink),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run stream-worker; returns the exit code (see the module docstring)."""
    stderr = sys.stderr
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
        configure_logging(PROG, settings.log_level, settings.log_format, stream=stderr)
        # httpx logs every request at INFO: one line per segment is noise, not news.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
        check_output(settings)
        source = open_input(settings)
        cpu_start = time.process_time()
        try:
            outcome, sink = asyncio.run(_run(settings, source, stderr))
        finally:
            source.close()
    except (UsageError, EndpointError) as exc:
        stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return EXIT_USAGE
    except OSError as exc:
        stderr.write(f"{PROG}: error: writing the output failed: {exc}\n")
        return EXIT_FAILURE
    summary = build_summary(settings, source, outcome, sink, time.process_time() - cpu_start)
    line = json.dumps(summary, separators=(",", ":"))
    stderr.write(line + "\n")
    stderr.flush()
    if settings.summary_json:
        try:
            with open(settings.summary_json, "w", encoding="utf-8") as file:
                file.write(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            stderr.write(f"{PROG}: error: cannot write {settings.summary_json}: {exc}\n")
            return EXIT_FAILURE
    return EXIT_FAILURE if outcome.input_error else EXIT_OK
