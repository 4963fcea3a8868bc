"""stream-worker settings: the one declaration of every option and `WORKER_` variable.

Each field is a setting read from ``WORKER_<NAME>`` and a command-line option ``--<name>``
(underscores become dashes); its description is the option's help. `Cli` adds what the
command line needs beyond that (a short flag, a placeholder). Adding an option is adding a
field: `stream_worker.main` builds the parser from `WorkerSettings.model_fields`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared_audio import SUPPORTED_CHANNELS, SUPPORTED_SAMPLE_RATES
from shared_utils import LogFormat, LogLevel, ServiceSettings
from shared_utils.contract import (
    DEFAULT_STS_URL,
    MAX_CONTEXT_MS,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    ProcessConfig,
    ProcessRequest,
)
from stream_worker.voiceover import DEFAULT_DUCK_DB, MIN_DUCK_DB  # the reasons are there

#: Length of the fixed cut (`--segmenter fixed`), the production platform's choice.
DEFAULT_SEGMENT_MS = 6000
#: Shortest and longest segment accepted (a 30 s 48 kHz stereo segment is ~7.7 MB of base64).
MIN_SEGMENT_MS = 100
MAX_SEGMENT_MS = 30000
#: Pause cuts (the default), chosen with bench/bench_vad.py and bench/bench_latency.py: of
#: 150 / 250 / 400 ms, a 250 ms pause put the fewest cuts inside words; segments under 1 s
#: give whisper too little context; 2800 ms is the longest segment the 4 s budget leaves
#: room for.
DEFAULT_PAUSE_MS = 250
DEFAULT_MIN_SEGMENT_MS = 1000
DEFAULT_MAX_SEGMENT_MS = 2800
#: The delay budget: longest segment + expected service time + margin. The service time is
#: what the real engines take for a segment of up to 2.8 s on 2 cores while streaming (p95
#: 0.7 s, max 1.0 s in bench_latency.py); the margin covers the reorder buffer's grace,
#: encoding and writing.
DEFAULT_SERVICE_MS = 900
DEFAULT_MARGIN_MS = 300
#: After a hard cut, the audio before the next segment that goes with it (contract 1.2
#: `context_audio`). In bench/bench_latency.py's sweep on real recordings, 1000 ms cut the
#: WER most (2000 ms less, and whisper then hears 2 s more per request, which broke the
#: 900 ms service budget on a loaded machine).
DEFAULT_CONTEXT_MS = 1000
#: Live output delay beyond the longest segment, at least (so some dub can make its slot).
LIVE_DELAY_SLACK_MS = 500

Segmentation = Literal["vad", "fixed"]

#: The contract's language-tag pattern, read from the contract itself (one source of truth).
_LANGUAGE_RE = re.compile(
    ProcessConfig.model_json_schema()["properties"]["source_language"]["pattern"]
)
#: The contract's id pattern; the fragment id is "<stream id>-<sequence>", so ids stay short.
_ID_RE = re.compile(ProcessRequest.model_json_schema()["properties"]["stream_id"]["pattern"])
MAX_STREAM_ID_CHARS = 100

ProgressMode = Literal["auto", "always", "never"]
#: replace: the dub alone; voice-over: the dub over the original, ducked while it speaks.
MixMode = Literal["replace", "voice-over"]


@dataclass(frozen=True)
class Cli:
    """Command-line details of a setting beyond its name, type and description.

    Attributes:
        short: A one-letter flag besides ``--<name>``, e.g. ``-i``.
        metavar: Placeholder for the value in the help (integers show ``N``).
    """

    short: str | None = None
    metavar: str | None = None


class WorkerSettings(ServiceSettings):
    """Settings of stream-worker, read from `WORKER_<NAME>` variables; the CLI overrides them.

    Example:
        >>> WorkerSettings(input="in.wav", output="out.wav").segment_ms
        6000
    """

    model_config = SettingsConfigDict(env_prefix="WORKER_")

    input: Annotated[str | None, Cli(short="-i", metavar="PATH|URL|-")] = Field(
        default=None,
        description="media file or live URL (anything FFmpeg reads), or - for raw PCM S16LE "
        "on stdin",
    )
    output: Annotated[str | None, Cli(short="-o", metavar="PATH|URL|-")] = Field(
        default=None,
        description="media file (.mp4 .mkv .ts .flv .wav ...), live URL (rtmp:// tcp:// "
        "udp://), or - (raw PCM S16LE, or a container with --output-format)",
    )
    sample_rate: int = Field(default=16000, description="sample rate of raw stdin input (Hz)")
    channels: int = Field(default=1, description="channel count of raw stdin input")
    sts_url: Annotated[str, Cli(metavar="URL")] = Field(
        default=DEFAULT_STS_URL, description="base URL of sts-service"
    )
    sts_sample_rate: int = Field(default=16000, description="rate sent to sts-service (Hz)")
    sts_channels: int = Field(default=1, description="channels sent to sts-service")
    audio_track: int = Field(default=0, ge=0, description="audio track to dub (0: the first)")
    output_format: Annotated[str | None, Cli(metavar="NAME")] = Field(
        default=None,
        description="FFmpeg muxer of the output (mp4, matroska, mpegts, flv, wav; default: "
        "from its name)",
    )
    keep_original_audio: bool = Field(
        default=False, description="keep the original audio as a second track"
    )
    output_delay_ms: int | None = Field(
        default=None,
        ge=MIN_SEGMENT_MS,
        description="live: fixed delay of the output behind the input (default: the budget, "
        "longest segment + service-ms + margin-ms)",
    )
    read_timeout_ms: int = Field(
        default=5000,
        ge=100,
        description="live: silence after which the source counts as dropped (ms)",
    )
    source_lang: Annotated[str, Cli(metavar="LANG")] = Field(
        default="en", description="language spoken in the input"
    )
    target_lang: Annotated[str, Cli(metavar="LANG")] = Field(
        default="es", description="language to dub into"
    )
    segmenter: Segmentation = Field(
        default="vad",
        description="vad: cut at pauses, send only speech; fixed: every segment-ms, all sent",
    )
    segment_ms: int = Field(
        default=DEFAULT_SEGMENT_MS,
        ge=MIN_SEGMENT_MS,
        le=MAX_SEGMENT_MS,
        description="--segmenter fixed: segment length in ms",
    )
    pause_ms: int = Field(
        default=DEFAULT_PAUSE_MS,
        ge=32,
        le=5000,
        description="vad: a pause this long closes a segment (ms)",
    )
    min_segment_ms: int = Field(
        default=DEFAULT_MIN_SEGMENT_MS,
        ge=MIN_SEGMENT_MS,
        le=MAX_SEGMENT_MS,
        description="vad: a segment holds at least this much before a pause closes it (ms)",
    )
    max_segment_ms: int = Field(
        default=DEFAULT_MAX_SEGMENT_MS,
        ge=200,
        le=MAX_SEGMENT_MS,
        description="vad: longest segment; cut at its quietest point (ms)",
    )
    service_ms: int = Field(
        default=DEFAULT_SERVICE_MS,
        ge=0,
        le=MAX_TIMEOUT_MS,
        description="delay budget: expected sts-service time for the longest segment (ms)",
    )
    margin_ms: int = Field(
        default=DEFAULT_MARGIN_MS,
        ge=0,
        le=10000,
        description="delay budget: margin for buffering, encoding and writing (ms)",
    )
    context_ms: int = Field(
        default=DEFAULT_CONTEXT_MS,
        ge=0,
        le=MAX_CONTEXT_MS,
        description="after a cut inside speech, this much audio before the next segment goes "
        "with it so ASR hears the split word whole (ms; 0: none)",
    )
    max_inflight: int = Field(default=3, ge=1, le=64, description="requests in flight at most")
    timeout_ms: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_MS,
        le=MAX_TIMEOUT_MS,
        description="per-segment deadline in ms, retry included (default: the delay budget; "
        "live: never past the segment's output slot)",
    )
    realtime: bool = Field(
        default=False, description="pace a file input at real time (simulate live)"
    )
    require_sts: bool = Field(
        default=False, description="exit 2 if sts-service is unreachable at start"
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive failures that open the circuit"
    )
    breaker_reset_ms: int = Field(
        default=30000, ge=0, description="how long the circuit stays open (ms)"
    )
    shutdown_grace_ms: int = Field(
        default=2000,
        ge=0,
        description="on SIGINT/SIGTERM, wait this long for in-flight segments (ms)",
    )
    stream_id: Annotated[str | None, Cli(metavar="ID")] = Field(
        default=None, description="stream id sent to sts-service (default: random)"
    )
    summary_json: Annotated[str | None, Cli(metavar="PATH")] = Field(
        default=None, description="also write the JSON summary to this file"
    )
    segments_json: Annotated[str | None, Cli(metavar="PATH")] = Field(
        default=None,
        description="write one JSON line per segment to this file (timing, outcome, text)",
    )
    progress: ProgressMode = Field(
        default="auto", description="progress on stderr (auto: when stderr is a terminal)"
    )
    log_level: LogLevel = Field(default="INFO", description="log level")
    log_format: LogFormat = Field(
        default="auto", description="log format (auto: console on a terminal)"
    )
    sts_token: Annotated[SecretStr | None, Cli(metavar="TOKEN")] = Field(
        default=None,
        description="bearer token for sts-service; prefer its environment variable (argv is seen)",
    )
    metrics_port: Annotated[int | None, Cli(metavar="PORT")] = Field(
        default=None, ge=1, le=65535, description="serve Prometheus metrics on this port"
    )
    metrics_host: Annotated[str, Cli(metavar="ADDR")] = Field(
        default="127.0.0.1", min_length=1, description="bind address of the metrics port"
    )
    mix: MixMode = Field(
        default="replace",
        description="replace: the dub alone; voice-over: the dub over the original audio, "
        "ducked by --duck-db while the dub speaks",
    )
    duck_db: Annotated[float, Cli(metavar="DB")] = Field(
        default=DEFAULT_DUCK_DB,
        ge=MIN_DUCK_DB,
        le=0.0,
        description="voice-over: gain of the original audio while the dub speaks (dB, <= 0)",
    )
    captions: Annotated[str | None, Cli(metavar="FILE.vtt")] = Field(
        default=None,
        description="write the translation as WebVTT, timed to the dub in the output "
        "(mp4/mov/mkv/webm outputs also get it as a subtitle track)",
    )
    captions_source: Annotated[str | None, Cli(metavar="FILE.vtt")] = Field(
        default=None,
        description="write the source transcript as WebVTT (and as a second subtitle track)",
    )
    caption_tracks: bool = Field(
        default=True,
        description="put the captions in the output as subtitle tracks too (mp4/mov/mkv/webm)",
    )

    @field_validator("sts_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator(
        "input",
        "output",
        "summary_json",
        "segments_json",
        "output_format",
        "captions",
        "captions_source",
    )
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("source_lang", "target_lang")
    @classmethod
    def _check_language(cls, value: str) -> str:
        if not _LANGUAGE_RE.match(value):
            raise ValueError("must be a language tag such as 'en' or 'pt-BR'")
        return value

    @field_validator("sample_rate", "sts_sample_rate")
    @classmethod
    def _check_rate(cls, value: int) -> int:
        if value not in SUPPORTED_SAMPLE_RATES:
            raise ValueError(
                f"{value} Hz is not supported; use one of {sorted(SUPPORTED_SAMPLE_RATES)}"
            )
        return value

    @field_validator("channels", "sts_channels")
    @classmethod
    def _check_channels(cls, value: int) -> int:
        if value not in SUPPORTED_CHANNELS:
            raise ValueError(f"{value} is not supported; use one of {sorted(SUPPORTED_CHANNELS)}")
        return value

    @property
    def longest_segment_ms(self) -> int:
        """The longest segment the chosen segmenter makes."""
        return self.max_segment_ms if self.segmenter == "vad" else self.segment_ms

    @property
    def budget_delay_ms(self) -> int:
        """The delay budget: longest segment + expected service time + margin."""
        return self.longest_segment_ms + self.service_ms + self.margin_ms

    @property
    def live_delay_ms(self) -> int:
        """The live output delay: the option, or the delay budget."""
        if self.output_delay_ms is not None:
            return self.output_delay_ms
        return self.budget_delay_ms

    @property
    def request_timeout_ms(self) -> int:
        """Per-segment deadline: the option, or the delay budget (within the contract range)."""
        if self.timeout_ms is not None:
            return self.timeout_ms
        return min(MAX_TIMEOUT_MS, max(MIN_TIMEOUT_MS, self.budget_delay_ms))

    @model_validator(mode="after")
    def _check_delay(self) -> WorkerSettings:
        least = self.longest_segment_ms + LIVE_DELAY_SLACK_MS
        if self.output_delay_ms is not None and self.output_delay_ms < least:
            raise ValueError(
                f"output_delay_ms {self.output_delay_ms} is shorter than the longest segment "
                f"plus {LIVE_DELAY_SLACK_MS} ms ({least}): no segment could be dubbed in time"
            )
        # An option of the other segmenter would be silently ignored: say so instead.
        given = self.model_fields_set
        if self.segmenter == "vad" and "segment_ms" in given:
            raise ValueError(
                "segment_ms applies to segmenter fixed only; pause cuts (segmenter vad, the "
                "default) are bounded by max_segment_ms"
            )
        vad_only = sorted(given & {"pause_ms", "min_segment_ms", "max_segment_ms"})
        if self.segmenter == "fixed" and vad_only:
            verb = "applies" if len(vad_only) == 1 else "apply"
            raise ValueError(f"{', '.join(vad_only)} {verb} to segmenter vad only")
        if self.segmenter == "vad" and self.min_segment_ms >= self.max_segment_ms:
            raise ValueError(
                f"min_segment_ms {self.min_segment_ms} must be below max_segment_ms "
                f"{self.max_segment_ms}"
            )
        return self

    @field_validator("stream_id")
    @classmethod
    def _check_stream_id(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > MAX_STREAM_ID_CHARS or not _ID_RE.match(value)):
            raise ValueError(
                f"must be 1-{MAX_STREAM_ID_CHARS} letters, digits or ._:- (starting with a "
                "letter or digit)"
            )
        return value
