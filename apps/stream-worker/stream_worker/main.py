"""Command line of stream-worker (console script `stream-worker`, `python -m stream_worker`).

Exit codes: 0 when the output was written completely (also after SIGINT/SIGTERM, whenever it
comes once the output is named: then the output holds what was read so far); 2 for an
invalid option, setting or input, or an unreachable sts-service with ``--require-sts``; 1 when
the input broke off with an error or the output could not be written (the output written so
far is still a valid file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TextIO, get_args, get_origin

import numpy as np
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from shared_utils import CircuitBreaker, SettingsError, configure_logging, load_settings
from shared_utils.contract import CONTRACT_VERSION
from stream_worker import __version__
from stream_worker.captions import Captioner, CaptionKind, WebVttFile
from stream_worker.client import StsClient, StsUnavailableError
from stream_worker.config import Cli, WorkerSettings
from stream_worker.endpoints import (
    EndpointError,
    Input,
    InputInterruptedError,
    check_caption_paths,
    check_output,
    media_summary,
    open_input_interruptibly,
    open_sink,
)
from stream_worker.metrics import serve_metrics
from stream_worker.mux import MediaSink
from stream_worker.outcome import DubResult
from stream_worker.pipeline import PipelineOptions, PipelineOutcome, StreamDubber
from stream_worker.reorder import Emitted
from stream_worker.segmenter import Cutter, FixedCutter, PauseRules, PauseSegmenter
from stream_worker.signals import STOP_SIGNALS
from stream_worker.sink import Sink
from stream_worker.vad import SpeechDetector
from stream_worker.voiceover import VoiceOver

logger = logging.getLogger(__name__)

PROG = "stream-worker"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: Length of the silence sent at start-up to learn whether the language pair is served.
PAIR_PROBE_MS = 200
PAIR_PROBE_TIMEOUT_S = 3.0


class UsageError(Exception):
    """Invalid options, settings or input: one line for stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        """Turn an argparse error into a `UsageError`."""
        raise UsageError(message)


@dataclass(frozen=True)
class Option:
    """A command-line option, derived from one `WorkerSettings` field.

    Attributes:
        field: The settings field (and ``WORKER_<FIELD>`` variable) it sets.
        flags: Its flags, the long one last.
        help: Its help text: the field's description.
    """

    field: str
    flags: tuple[str, ...]
    help: str


def _argument(name: str, info: FieldInfo) -> tuple[Option, dict[str, Any]]:
    """The option for one settings field and the `add_argument` keywords that parse it."""
    cli = next((item for item in info.metadata if isinstance(item, Cli)), Cli())
    flags = (*((cli.short,) if cli.short else ()), f"--{name.replace('_', '-')}")
    option = Option(name, flags, info.description or name.replace("_", " "))
    kwargs: dict[str, Any] = {
        "dest": name,
        "default": None,  # None = not given: the environment or the default fills it
        "help": f"{option.help} [{WorkerSettings.env_var_for(name)}]",
    }
    annotation = info.annotation
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif annotation in (int, int | None):  # None (the default) is never typed on the line
        kwargs.update(type=int, metavar=cli.metavar or "N")
    elif get_origin(annotation) is Literal:
        kwargs["choices"] = get_args(annotation)
    else:  # str or str | None: pydantic validates the text
        kwargs["metavar"] = cli.metavar
    return option, kwargs


#: Every option, one per settings field (each also comes from WORKER_<FIELD>; the CLI wins).
_ARGUMENTS = tuple(_argument(name, info) for name, info in WorkerSettings.model_fields.items())
OPTIONS: tuple[Option, ...] = tuple(option for option, _ in _ARGUMENTS)
_FLAG = {option.field: option.flags[-1] for option in OPTIONS}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Every option defaults to None so settings fill what is not given."""
    parser = _Parser(
        prog=PROG,
        description="Dub an audio stream through sts-service without losing a sample. "
        "Every option can also be set as WORKER_<OPTION> (e.g. WORKER_STS_URL); "
        "the command line wins. `stream-worker --streams FILE` runs every stream of a TOML "
        "file in this one process (the options given beside it apply to every stream).",
    )
    for option, kwargs in _ARGUMENTS:
        parser.add_argument(*option.flags, **kwargs)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def _option_errors(given: dict[str, Any]) -> list[str]:
    """What is wrong with the values given on the command line, each named by its flag.

    Each value is validated alone against its field (constraints and validators), so the
    message names the option rather than the environment variable it overrides. Checks that
    span fields (no location) would judge the value against the defaults of the others: they
    are left to `load_settings`, which sees every value.

    pydantic has no public call that validates one field with its validators and constraints;
    the model's core validator (`validate_assignment` on a scratch instance) is that call. This
    is its only use in the repo; tests/unit/test_cli.py checks each flag's message through it.
    """
    scratch = WorkerSettings.model_construct()
    problems: list[str] = []
    for name, value in given.items():
        try:
            WorkerSettings.__pydantic_validator__.validate_assignment(scratch, name, value)
        except ValidationError as exc:
            for error in exc.errors():
                if not error["loc"]:  # a check across fields: see the docstring
                    continue
                problems.append(f"{_FLAG[name]}: {error['msg']} (got {error.get('input')!r})")
    return problems


def parse_settings(argv: Sequence[str]) -> WorkerSettings:
    """Parse the command line over the `WORKER_` environment.

    Raises:
        UsageError: naming the option (or variable) at fault.
    """
    args = build_parser().parse_args(list(argv))
    given = {key: value for key, value in vars(args).items() if value is not None}
    problems = _option_errors(given)
    if problems:
        raise UsageError("; ".join(problems))
    try:
        settings = load_settings(WorkerSettings, **given)
    except SettingsError as exc:  # the command line is valid: a variable is at fault
        raise UsageError(str(exc)) from None
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
    client.service_contract = health.contract_version
    if health.contract_version != CONTRACT_VERSION:
        logger.warning(
            "sts-service speaks contract %s, this worker %s",
            health.contract_version,
            CONTRACT_VERSION,
        )
    await _check_pair(client, require)


async def _check_pair(client: StsClient, require: bool) -> None:
    """Ask the service to dub a moment of silence: it refuses a pair it cannot serve.

    The service is the one source of truth on its language pairs (and its names for them),
    so the worker asks it rather than reading a list: a refusal (INVALID_REQUEST) means every
    segment would fall back, which is an error with --require-sts and a loud warning without.
    """
    fmt = client.format
    silence = np.zeros((fmt.frames_for_ms(PAIR_PROBE_MS), fmt.channels), dtype=np.int16)
    try:  # bounded: a slow service (models loading) must not hold a live input waiting
        answer = await asyncio.wait_for(client.send(0, silence), PAIR_PROBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        logger.info("sts-service did not answer the language-pair check in time; not checked")
        return
    if not isinstance(answer, DubResult) or "INVALID_REQUEST" not in answer.detail:
        return
    problem = f"sts-service at {client.base_url} refuses this stream: {answer.detail}"
    if require:
        raise UsageError(f"{problem} (--require-sts)")
    logger.error("%s; EVERY segment will fall back to the original audio", problem)


async def _run(
    settings: WorkerSettings,
    source: Input,
    stderr: TextIO,
    segment_log: Callable[[dict[str, Any]], None] | None = None,
    caption_files: dict[CaptionKind, WebVttFile] | None = None,
) -> tuple[PipelineOutcome, Sink]:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    _announce_budget(settings, _is_live(source))
    dubbers: list[StreamDubber] = []

    def stop() -> None:
        stopped.set()
        for dubber in dubbers:
            dubber.request_stop()

    installed = _install_signal_handlers(loop, stop)
    if STOP_SIGNALS.received is not None:  # it came during the imports or the checks
        stop()
    breaker = CircuitBreaker(
        failure_threshold=settings.breaker_failures,
        reset_timeout_s=settings.breaker_reset_ms / 1000,
    )
    try:
        async with StsClient(
            settings.sts_url,
            source.fmt,
            source_lang=settings.source_lang,
            target_lang=settings.target_lang,
            timeout_ms=settings.request_timeout_ms,
            breaker=breaker,
            stream_id=settings.stream_id,
            max_connections=settings.max_inflight,
            token=settings.sts_token.get_secret_value() if settings.sts_token else None,
        ) as client:
            await _unless_stopped(_check_sts(client, settings.require_sts), stopped)
            sink = open_sink(settings, source)
            show = settings.progress == "always" or (
                settings.progress == "auto" and stderr.isatty()
            )
            dubber = StreamDubber(
                client,
                source.chunks,
                source.fmt,
                sink,
                pipeline_options(settings, _is_live(source)),
                progress_stream=stderr,
                progress=show,
                total_s=source.total_s,
                cutter=make_cutter(settings, source),
                segment_log=segment_log,
                mix=VoiceOver(source.fmt, settings.duck_db).mix
                if settings.mix == "voice-over"
                else None,
                on_written=_captioner(source, sink, caption_files),
            )
            dubbers.append(dubber)
            if stopped.is_set():  # stopped before the first read: an empty, valid output
                dubber.request_stop()
            stop_metrics: Callable[[], None] | None = None
            try:
                if settings.metrics_port is not None:
                    stop_metrics = _serve_metrics(
                        settings.metrics_port, settings.metrics_host, dubber, client.stream_id
                    )
                outcome = await dubber.run()
            finally:
                if stop_metrics is not None:
                    stop_metrics()
                sink.close()
            return outcome, sink
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        STOP_SIGNALS.take_back()  # the summary is still to be written


def _captioner(
    source: Input, sink: Sink, files: dict[CaptionKind, WebVttFile] | None
) -> Callable[[Emitted, int], None] | None:
    """What writes each segment's cues to the caption files and tracks; None without files."""
    if not files:
        return None
    media = source.media
    packets = media.packets if media is not None else None
    captioner = Captioner(
        source.fmt,
        files,
        track=sink if isinstance(sink, MediaSink) else None,
        # The dubbed track starts at the source's first audio sample (media), else at 0.
        origin_s=lambda: (packets.audio_start_s or 0.0) if packets is not None else 0.0,
    )
    return captioner.written


@contextlib.contextmanager
def _caption_files(settings: WorkerSettings) -> Iterator[dict[CaptionKind, WebVttFile]]:
    """The WebVTT files of --captions and --captions-source, created before the run.

    Raises:
        UsageError: if one cannot be created.
    """
    files: dict[CaptionKind, WebVttFile] = {}
    asked: tuple[tuple[CaptionKind, str | None, str], ...] = (
        ("translation", settings.captions, "--captions"),
        ("source", settings.captions_source, "--captions-source"),
    )
    try:
        for kind, path, option in asked:
            if path is not None:
                try:
                    files[kind] = WebVttFile(path, option)
                except OSError as exc:
                    raise UsageError(str(exc)) from None
        yield files
    finally:
        for file in files.values():
            file.close()


def make_cutter(
    settings: WorkerSettings, source: Input, detector: SpeechDetector | None = None
) -> Cutter:
    """The cutter the settings ask for: pauses found by Silero VAD, or fixed lengths.

    `detector` replaces the stream's own Silero VAD (``--streams``: the batched one).
    """
    if settings.segmenter == "fixed":
        return FixedCutter(source.fmt, settings.segment_ms)
    from stream_worker.vad import SileroVad  # onnxruntime: loaded only when used

    rules = PauseRules(
        pause_ms=settings.pause_ms,
        min_segment_ms=settings.min_segment_ms,
        max_segment_ms=settings.max_segment_ms,
    )
    return PauseSegmenter(source.fmt, detector or SileroVad(), rules)


def pipeline_options(settings: WorkerSettings, live: bool) -> PipelineOptions:
    """What the pipeline takes from the settings; live, every segment has its output slot."""
    return PipelineOptions(
        segment_ms=settings.segment_ms,
        max_inflight=settings.max_inflight,
        timeout_ms=settings.request_timeout_ms,
        shutdown_grace_ms=settings.shutdown_grace_ms,
        max_delay_ms=settings.live_delay_ms if live else None,
        context_ms=settings.context_ms,
    )


def _announce_budget(settings: WorkerSettings, live: bool) -> None:
    """Say at start what delay the output runs at and where it comes from."""
    if settings.output_delay_ms is not None:
        origin = "--output-delay-ms"
    else:
        origin = (
            f"longest segment {settings.longest_segment_ms} + service {settings.service_ms} "
            f"+ margin {settings.margin_ms} ms"
        )
    logger.info(
        "delay budget: %d ms (%s); %s; per-request deadline %d ms%s",
        settings.live_delay_ms,
        origin,
        "live: the output runs this far behind the input"
        if live
        else "file: not paced, the budget sets the per-request deadline only",
        settings.request_timeout_ms,
        ", and never past the segment's output slot" if live else "",
    )


def _serve_metrics(
    port: int, host: str, dubber: StreamDubber, stream_id: str
) -> Callable[[], None]:
    """Serve this run's Prometheus metrics on --metrics-port; a taken port is a usage error."""
    try:
        return serve_metrics(port, host, lambda: dubber.stats, stream_id)
    except OSError as exc:
        raise UsageError(f"--metrics-port: cannot listen on {host}:{port}: {exc}") from exc


async def _unless_stopped(work: Coroutine[Any, Any, None], stopped: asyncio.Event) -> None:
    """Await `work`, or cancel it when a stop comes first (e.g. during the health check)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not task.done():
        task.cancel()
        logger.warning("stop requested before sts-service answered its health check")
        await asyncio.gather(task, return_exceptions=True)
        return
    task.result()


def _is_live(source: Input) -> bool:
    return source.media is not None and source.media.info.live


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None]
) -> list[int]:
    installed: list[int] = []
    for signum in STOP_SIGNALS.handled:
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
            "segmenter": settings.segmenter,
            "segment_ms": settings.segment_ms,
            "pause_ms": settings.pause_ms,
            "min_segment_ms": settings.min_segment_ms,
            "max_segment_ms": settings.max_segment_ms,
            "output_delay_ms": settings.live_delay_ms if _is_live(source) else None,
            "request_timeout_ms": settings.request_timeout_ms,
            "non_speech_s": round(source.fmt.duration_s(outcome.stats.non_speech_frames), 3),
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
    installed_here = STOP_SIGNALS.install()  # already done by the console script
    args = sys.argv[1:] if argv is None else argv
    try:
        from stream_worker import streams  # imports this module: loaded only when used

        if streams.wants_streams(args):  # many streams in this process: their own command
            return streams.main(args)
        return _main(args)
    finally:
        if installed_here:  # called as a function (tests): leave the caller's handlers as found
            STOP_SIGNALS.restore()


@contextlib.contextmanager
def _segments_file(
    path: str | None,
) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """The writer of --segments-json (None without the option).

    One JSON line per segment, flushed at once, so a live run can be followed with tail -f.

    Raises:
        UsageError: if the file cannot be created.
    """
    if path is None:
        yield None
        return
    try:
        file = open(path, "w", encoding="utf-8")  # closed below, after the run
    except OSError as exc:
        raise UsageError(f"--segments-json: cannot write {path}: {exc.strerror}") from None

    def write(record: dict[str, Any]) -> None:
        file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        file.flush()

    try:
        yield write
    finally:
        file.close()


def _main(argv: Sequence[str]) -> int:
    stderr = sys.stderr
    try:
        settings = parse_settings(argv)
        configure_logging(PROG, settings.log_level, settings.log_format, stream=stderr)
        # httpx logs every request at INFO: one line per segment is noise, not news.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
        # First: a missing input is an input problem. A signal abandons a blocked open.
        source = open_input_interruptibly(settings, lambda: STOP_SIGNALS.received is not None)
        try:
            check_output(settings)
            check_caption_paths(settings)
            with (
                _segments_file(settings.segments_json) as segment_log,
                _caption_files(settings) as caption_files,
            ):
                cpu_start = time.process_time()
                outcome, sink = asyncio.run(
                    _run(settings, source, stderr, segment_log, caption_files)
                )
        finally:
            source.close()
    except InputInterruptedError as exc:
        stderr.write(f"{PROG}: {exc}; nothing was written\n")
        return EXIT_OK
    except (UsageError, EndpointError) as exc:
        stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return EXIT_USAGE
    except OSError as exc:
        stderr.write(f"{PROG}: error: writing the output failed: {exc}\n")
        return EXIT_FAILURE
    summary = build_summary(settings, source, outcome, sink, time.process_time() - cpu_start)
    if caption_files:
        summary["captions"] = {
            kind: {"path": file.path, "cues": file.cues} for kind, file in caption_files.items()
        }
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
