"""Media output through PyAV: the input's video, untouched, beside the dubbed audio.

:class:`MediaSink` is a :class:`~stream_worker.sink.Sink`: the pipeline writes the dubbed audio
to it, in order, in the service's format. It converts that back to the source's rate and
layout, encodes it for the container (AAC for MP4/FLV/MPEG-TS, Opus for Matroska/WebM) and
muxes it with the video packets the :class:`~stream_worker.demux.MediaSource` queued, which
are never re-encoded. Audio timestamps count samples from the source's first audio sample, so
the dubbed track starts with the video and stays within one audio frame of it: every segment
(dubbed or original) has exactly its input's length.

File output: a video packet is written once the audio has reached its time. Live output: a
writer thread releases everything at a fixed delay behind the input's clock, whether or not
the dub has come: the pipeline's deadlines make a late segment fall back to the original
audio before its slot, so the output never stalls.
"""

from __future__ import annotations

import heapq
import logging
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO

import av
import av.codec
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.layout import AudioLayout
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from shared_audio import AudioFormat
from stream_worker import conversions
from stream_worker.captions import CaptionKind, Cue, escape
from stream_worker.demux import MediaInfo, PacketQueue, is_live_url, unavailable_protocol
from stream_worker.languages import iso639_2
from stream_worker.media import TimedPacket

logger = logging.getLogger(__name__)

#: The audio codec each container gets (FFmpeg muxer name -> encoder).
AUDIO_CODECS = {
    "mp4": "aac",
    "mov": "aac",
    "flv": "aac",
    "mpegts": "aac",
    "matroska": "libopus",
    "webm": "libopus",
}
#: Muxers for network destinations: RTMP carries FLV; SRT, UDP and TCP carry MPEG-TS.
LIVE_FORMATS = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts", "tcp": "mpegts"}
AAC_BITRATE = 128_000
#: The layout the dubbed track gets for each channel count: FFmpeg's usual ones, which the
#: AAC and Opus encoders both take. Opus takes no other order (``5.1(side)``, AC-3's usual
#: 5.1, was refused: exit 2), and AAC no unordered layout (AAC 5.1(side) in MP4 reads back
#: as ``6 channels``, refused the same way). Only the dub is written there, so nothing of
#: the source's own channel order is lost.
OUTPUT_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "3.0",
    4: "quad",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}
#: FFmpeg's "fast" AAC coder: about twice the speed of the default (two-loop search), and
#: transparent enough for speech at 128 kb/s; encoding is most of the worker's CPU time.
AAC_OPTIONS = {"aac_coder": "fast"}
#: Samples an encoder puts before the first real one (FFmpeg's AAC encoder: one frame).
PRIMING_SAMPLES = {"aac": 1024}
#: Muxers that cannot say "skip the priming" (no edit list / codec delay field): a decoder
#: plays it, so the dubbed track would start that much late and the muxer would shift every
#: stream to keep the encoder's negative first timestamp. For them the dubbed audio starts
#: that many samples in, at its own time, and the priming takes the place of what was cut.
NO_PRIMING_SKIP = ("flv", "mpegts")
#: MP4/MOV are written fragmented: a plain MP4's index (moov) is written only when it is
#: finalised, so a crash, a SIGKILL or a full disk left nothing playable. Fragments are
#: cut at every video keyframe and at least every ``flush_every_s``.
FRAGMENTED = ("mp4", "mov")
FRAGMENT_FLAGS = "frag_keyframe+delay_moov+default_base_moof"
#: The subtitle codec each container carries captions in (others: the .vtt file only).
SUBTITLE_CODECS = {"mp4": "mov_text", "mov": "mov_text", "matroska": "webvtt", "webm": "webvtt"}
#: FFmpeg's interleaver holds every packet until each stream has one queued, or for up to
#: ``max_interleave_delta`` (10 s by default): a sparse subtitle track made it hold 10 s of
#: audio and video, so a SIGKILL lost 10 s and a live output went out 10 s late. So the
#: subtitle track never stays empty for long: a segment without a cue gives it an empty
#: sample (mov_text's own "nothing shown"), and Matroska, whose WebVTT has no empty cue, gets
#: a short ``max_interleave_delta`` (the sink hands packets over in time order,
#: `MediaSink._release`, so the interleaver needs only a little slack). MP4 does not get
#: the option: FFmpeg 7's mov_text gap filling then writes negative durations and aborts
#: the process (assertion ``next_dts >= 0`` in movenc.c).
MAX_INTERLEAVE_DELTA_US = "100000"
#: Subtitles are timed in milliseconds (WebVTT's own resolution).
SUBTITLE_TIME_BASE = Fraction(1, 1000)
#: FFmpeg's text subtitle encoders take their style from an ASS header and refuse to open
#: without one; the mov_text encoder turns it into the track's sample description (font,
#: size, colours). One default style: white, bottom centre.
ASS_HEADER = (
    b"[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n"
    b"[V4+ Styles]\r\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
    b"OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, "
    b"Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\r\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    b"\r\n\r\n[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, "
    b"Effect, Text\r\n"
)
#: Chunks waiting for the writer thread at most (then the pipeline waits).
WRITE_QUEUE = 8
#: How often the live writer thread looks for due packets.
LIVE_TICK_S = 0.01


class MuxError(OSError):
    """The output cannot be opened or written (an OSError: the run stops, exit 1)."""


#: Output names the worker knows a container for (FFmpeg knows more; any of its muxers works
#: with --output-format).
KNOWN_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".ts", ".flv", ".wav")


def open_failure(what: str, target: str, exc: BaseException) -> str:
    """One line saying why ``target`` cannot be opened; a missing protocol says why it is."""
    if isinstance(exc, av.error.ProtocolNotFoundError):
        return f"output {unavailable_protocol(target)}"
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"{what}: cannot open: {reason}"


def output_format(target: str, explicit: str | None) -> str | None:
    """The FFmpeg muxer for ``target``: explicit, by URL scheme, or None (by extension)."""
    if explicit:
        return explicit
    if is_live_url(target):
        return LIVE_FORMATS.get(target.partition("://")[0].lower())
    return None


def durable_options(muxer: str, flush_every_s: float) -> dict[str, str]:
    """Muxer options that put what was written on disk at least every ``flush_every_s``.

    FFmpeg buffers its output in 256 KiB blocks, Matroska in clusters and MP4 keeps its
    index for the end: a killed run lost all of those. Every packet written now reaches the
    destination at once (``flush_packets``), Matroska closes a cluster and MP4 a fragment at
    least every ``flush_every_s``: a crash loses at most that much of any container.
    """
    name = muxer.split(",")[0]
    options = {"flush_packets": "1"}
    if name in FRAGMENTED:
        options["movflags"] = FRAGMENT_FLAGS
        options["frag_duration"] = str(max(1, round(flush_every_s * 1_000_000)))
    elif name in ("matroska", "webm"):
        options["cluster_time_limit"] = str(max(1, round(flush_every_s * 1000)))
    return options


def encoder_rate(codec: str, source_rate: int) -> int:
    """The rate ``codec`` encodes a ``source_rate`` source at: its own when the encoder takes it.

    Otherwise the lowest supported rate above it (nothing audible is lost), or the highest
    one for a source faster than any (AAC stops at 96 kHz: 176.4/192 kHz become 96 kHz;
    Opus runs at 8/12/16/24/48 kHz only). The dub is resampled to it.
    """
    try:
        rates = av.codec.Codec(codec, "w").audio_rates
    except (av.error.FFmpegError, ValueError):  # unknown encoder: add_stream names it
        return source_rate
    if not rates or source_rate in rates:
        return source_rate
    above = [r for r in rates if r > source_rate]
    return min(above) if above else max(rates)


def output_layout(source_layout: str) -> str:
    """The dubbed track's layout for a ``source_layout`` source (see `OUTPUT_LAYOUTS`).

    Example:
        >>> output_layout("stereo"), output_layout("5.1(side)"), output_layout("6 channels")
        ('stereo', '5.1', '5.1')
    """
    if source_layout in OUTPUT_LAYOUTS.values():
        return source_layout
    return OUTPUT_LAYOUTS.get(AudioLayout(source_layout).nb_channels, source_layout)


@dataclass
class MuxStats:
    """What the sink wrote.

    Attributes:
        container: The muxer's name.
        audio_codec: The dubbed track's encoder.
        video_packets: Video packets passed through.
        audio_packets: Encoded dubbed-audio packets written.
        original_packets: Original audio packets passed through (``--keep-original-audio``).
        audio_behind_s: Live: the most the dubbed audio was behind its output slot (0 when
            every segment, dubbed or original, was there in time).
    """

    container: str
    audio_codec: str
    video_packets: int = 0
    audio_packets: int = 0
    original_packets: int = 0
    audio_behind_s: float = 0.0
    tracks: list[dict[str, str]] = field(default_factory=list)
    cues: int = 0


@dataclass(frozen=True)
class _CueItem:
    """A cue on its way to the writer thread."""

    kind: CaptionKind
    cue: Cue


def cue_payload(codec: str, text: str) -> bytes:
    r"""One subtitle packet's bytes: what FFmpeg's ``codec`` encoder makes of plain text.

    mov_text (3GPP timed text): a 16-bit big-endian length and the UTF-8 text. WebVTT in
    Matroska: the cue's text, WebVTT-escaped. Written directly rather than through the
    encoders, whose input is ASS markup (braces and backslashes in a translation would be
    taken for style codes).

    Example:
        >>> cue_payload("mov_text", "hé"), cue_payload("webvtt", "a<b")
        (b'\x00\x03h\xc3\xa9', b'a&lt;b')
    """
    if codec == "mov_text":
        data = text.encode("utf-8")
        return struct.pack(">H", len(data)) + data
    return escape(text).encode("utf-8")


def _take_until(queued: deque[TimedPacket], until_s: float) -> list[TimedPacket]:
    """Remove and return the packets at the head of ``queued`` whose time is <= ``until_s``."""
    taken: list[TimedPacket] = []
    while queued and queued[0].time_s <= until_s:
        taken.append(queued.popleft())
    return taken


class MediaSink:
    """Writes the dubbed audio (and the input's video) into a container.

    Args:
        target: A path, ``-`` (stdout, needs ``container_format``) or a live URL.
        service_fmt: The format the pipeline writes (the service's).
        media: The input's streams.
        packets: The reader's hand-over: pass-through packets, audio start, end.
        container_format: FFmpeg muxer name; by default guessed from ``target``.
        keep_original_audio: Keep the source's audio as a second track.
        dub_language: Language of the dubbed track (BCP 47).
        original_language: Language of the original track (BCP 47).
        live_delay_s: Live only: how far behind the input the output runs.
        stdout: The stream ``-`` writes to.
        flush_every_s: What reaches the destination at least this often (one segment).
        captions: Caption tracks to add, each kind with its language (BCP 47), when the
            container carries subtitles (`SUBTITLE_CODECS`); see `write_cue`.

    Raises:
        MuxError: the output cannot be opened or the codec is missing.
    """

    def __init__(
        self,
        target: str,
        service_fmt: AudioFormat,
        media: MediaInfo,
        packets: PacketQueue,
        *,
        container_format: str | None = None,
        keep_original_audio: bool = False,
        dub_language: str = "und",
        original_language: str = "und",
        live_delay_s: float | None = None,
        stdout: BinaryIO | None = None,
        flush_every_s: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
        captions: dict[CaptionKind, str] | None = None,
    ) -> None:
        self.frames_written = 0
        self._service_fmt = service_fmt
        self._media = media
        self._packets = packets
        self._clock = clock
        self._closed = False
        fmt = output_format(target, container_format)
        try:
            if target == "-":
                if stdout is None:
                    raise MuxError("output -: stdout is not available")
                self._out: OutputContainer = av.open(stdout, mode="w", format=fmt)
            else:
                self._out = av.open(target, mode="w", format=fmt, timeout=10.0)
        except ValueError:  # PyAV: no muxer of that name, or none for that file name
            what = f"--output-format {fmt}" if fmt else f"the name {target!r}"
            raise MuxError(
                f"output {target}: no container format for {what}; use a name ending in "
                f"{', '.join(KNOWN_EXTENSIONS)} or give --output-format (e.g. mp4, matroska, "
                "mpegts)"
            ) from None
        except (av.error.FFmpegError, OSError) as exc:
            raise MuxError(open_failure(f"output {target}", target, exc)) from None
        # Read when the header is written (first packet): still in time here.
        self._out.options.update(durable_options(self._out.format.name, flush_every_s))
        try:
            self._setup(keep_original_audio, dub_language, original_language)
            self._setup_captions(captions or {})
            # PyAV opens the destination only with the header; open it now, so a refused
            # connection or an unwritable path is a start-up error (one line, exit 2)
            # rather than a failure of the first write.
            self._out.start_encoding()
        except (av.error.FFmpegError, OSError) as exc:
            self._close_quietly()
            if isinstance(exc, MuxError):
                raise
            raise MuxError(open_failure(f"output {target}", target, exc)) from None
        except BaseException:
            self._close_quietly()
            raise
        self._audio_out: deque[TimedPacket] = deque()
        self._cues_out: deque[TimedPacket] = deque()
        self._audio_end_s = packets.audio_start_s or 0.0
        self._samples_out = 0
        self._delay_s = live_delay_s if media.live else None
        self._error: MuxError | None = None
        # Encoding and muxing run on their own thread: FFmpeg releases the GIL while it
        # works, so the dub is encoded on the second core while the event loop talks to
        # sts-service. The bounded queue pushes back on the pipeline if encoding falls behind.
        self._inbox: queue.Queue[npt.NDArray[np.int16] | _CueItem | None] = queue.Queue(
            maxsize=WRITE_QUEUE
        )
        self._thread = threading.Thread(target=self._run, name="mux", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ set-up

    def _close_quietly(self) -> None:
        try:
            self._out.close()
        except (av.error.FFmpegError, OSError):  # it never opened: nothing to finalise
            pass

    def _setup(self, keep_original: bool, dub_lang: str, original_lang: str) -> None:
        media = self._media
        name = self._out.format.name.split(",")[0]
        codec = AUDIO_CODECS.get(name, self._out.default_audio_codec)
        rate = encoder_rate(codec, media.source_rate)
        self.rate = rate
        self._layout = layout = output_layout(media.source_layout)
        self._video_map: dict[int, Stream] = {}
        for stream in media.video:  # templates: the input is still open here
            try:
                self._video_map[stream.index] = self._out.add_stream_from_template(stream)
            except (av.error.FFmpegError, ValueError) as exc:
                raise MuxError(
                    f"output: {name} cannot carry the input's {stream.codec_context.name} "
                    f"video without re-encoding ({exc})"
                ) from None
        try:
            options = AAC_OPTIONS if codec == "aac" else None
            audio = self._out.add_stream(codec, rate=rate, layout=layout, options=options)
            assert isinstance(audio, AudioStream)  # an audio codec gives an audio stream
        except (av.error.FFmpegError, ValueError) as exc:
            raise MuxError(f"output: no {codec} encoder for {name}: {exc}") from None
        if codec == "aac":
            audio.bit_rate = AAC_BITRATE
        audio.metadata["language"] = iso639_2(dub_lang)
        audio.metadata["title"] = f"dubbed ({dub_lang})"
        self._audio: AudioStream = audio
        self._priming = PRIMING_SAMPLES.get(codec, 0) if name in NO_PRIMING_SKIP else 0
        self._skip = self._priming
        self._start = 0
        self.stats = MuxStats(container=name, audio_codec=codec)
        self.stats.tracks.append({"kind": "dubbed", "language": iso639_2(dub_lang)})
        self._original: Stream | None = None
        if keep_original:
            try:
                original = self._out.add_stream_from_template(media.audio)
            except (av.error.FFmpegError, ValueError) as exc:
                raise MuxError(
                    f"output: {name} cannot carry the original {media.audio_codec}"
                    f" audio as a second track ({exc})"
                ) from None
            original.metadata["language"] = iso639_2(original_lang)
            original.metadata["title"] = f"original ({original_lang})"
            self._original = original
            self.stats.tracks.append({"kind": "original", "language": iso639_2(original_lang)})
        # Straight to the encoder's own sample format (fltp for AAC and Opus): one conversion.
        self._resampler = conversions.OutputResampler(
            format=audio.codec_context.format.name, layout=layout, rate=rate
        )

    def _setup_captions(self, captions: dict[CaptionKind, str]) -> None:
        self._subtitles: dict[CaptionKind, Stream] = {}
        if not captions:
            return
        name = self.stats.container
        codec = SUBTITLE_CODECS.get(name)
        if codec is None:
            logger.info("captions: %s carries no text subtitle track; the .vtt files only", name)
            return
        titles = {"translation": "captions", "source": "transcript"}
        for kind, language in captions.items():
            try:
                stream = self._out.add_stream(codec)
            except (av.error.FFmpegError, ValueError) as exc:
                raise MuxError(f"output: no {codec} subtitle encoder for {name}: {exc}") from None
            stream.time_base = SUBTITLE_TIME_BASE
            stream.codec_context.time_base = SUBTITLE_TIME_BASE
            stream.codec_context.subtitle_header = ASS_HEADER  # type: ignore[attr-defined]  # a subtitle stream's context is a SubtitleCodecContext
            stream.metadata["language"] = iso639_2(language)
            stream.metadata["title"] = f"{titles[kind]} ({language})"
            self._subtitles[kind] = stream
            self.stats.tracks.append({"kind": titles[kind], "language": iso639_2(language)})
        self._subtitle_codec = codec
        if codec != "mov_text":
            self._out.options["max_interleave_delta"] = MAX_INTERLEAVE_DELTA_US

    # ------------------------------------------------------------------ writing

    def write_cue(self, kind: CaptionKind, cue: Cue) -> None:
        """Queue ``cue`` for the subtitle track of ``kind`` (nothing if it has none).

        Muxed by the writer thread once the audio has reached the cue's start, beside it.
        A cue without text marks a span with nothing to show: an empty mov_text sample
        (see `MAX_INTERLEAVE_DELTA_US` for why), nothing in Matroska.
        """
        if kind not in self._subtitles or self._error is not None:
            return
        if cue.text or self._subtitle_codec == "mov_text":
            self._inbox.put(_CueItem(kind, cue))

    def _queue_cue(self, item: _CueItem) -> None:
        cue = item.cue
        packet = Packet(cue_payload(self._subtitle_codec, cue.text))
        start = round(cue.start_s * 1000)
        packet.pts = packet.dts = start
        packet.duration = max(1, round(cue.end_s * 1000) - start)
        packet.time_base = SUBTITLE_TIME_BASE
        packet.stream = self._subtitles[item.kind]
        self._cues_out.append(TimedPacket(cue.start_s, packet))

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Hand the samples to the writer thread (encoded and muxed there, in order).

        Raises:
            MuxError: if writing has failed (e.g. the destination went away).
        """
        if self._error is not None:
            raise self._error
        self.frames_written += int(samples.shape[0])
        self._inbox.put(samples)

    def _convert(self, samples: npt.NDArray[np.int16]) -> None:
        frame = conversions.to_frame(samples, self._service_fmt, self._layout)
        self._encode(conversions.resample(self._resampler, frame))

    def _encode(self, frames: list[AudioFrame]) -> None:
        if self._samples_out == 0:  # the source's first timestamp is known by now
            self._start = round((self._packets.audio_start_s or 0.0) * self.rate) + self._priming
        start = self._start
        packets: list[Packet[Any]] = []
        for frame in self._skip_priming(frames):
            frame.pts = start + self._samples_out
            frame.time_base = Fraction(1, self.rate)
            self._samples_out += frame.samples
            packets.extend(conversions.encode(self._audio, frame))
        self._queue_audio(packets)
        self._audio_end_s = (start + self._samples_out) / self.rate

    def _skip_priming(self, frames: list[AudioFrame]) -> list[AudioFrame]:
        if self._skip <= 0:
            return frames
        kept: list[AudioFrame] = []
        for frame in frames:
            drop = min(self._skip, frame.samples)
            self._skip -= drop
            if drop == frame.samples:
                continue
            kept.append(conversions.drop_head(frame, drop, self._layout))
        return kept

    def _queue_audio(self, packets: list[Packet[Any]]) -> None:
        for packet in packets:
            if packet.pts is None or packet.time_base is None:
                continue
            self._audio_out.append(TimedPacket(float(packet.pts * packet.time_base), packet))

    def _release(self, until_s: float) -> None:
        """Mux every queued packet (audio, cues and pass-through) up to ``until_s``.

        In time order across the three (each keeps its own order; audio first at equal
        times), so the muxer's interleaver has nothing to hold back.
        """
        audio = _take_until(self._audio_out, until_s)
        cues = _take_until(self._cues_out, until_s)
        passing = self._packets.take_timed_until(until_s)
        tagged = (
            ((item.time_s, 0, item.packet) for item in audio),
            ((item.time_s, 1, item.packet) for item in cues),
            ((item.time_s, 2, item.packet) for item in passing),
        )
        for _, source, packet in heapq.merge(*tagged, key=lambda entry: entry[0]):
            if source == 0:
                self._mux(packet, self._audio)
                self.stats.audio_packets += 1
            elif source == 1:
                self._mux(packet, packet.stream)
                self.stats.cues += packet.size > 2  # not the empty samples
            else:
                self._pass_through(packet)

    def _pass_through(self, packet: Packet[Any]) -> None:
        if packet.stream_index == self._media.audio_index:
            if self._original is not None:
                self._mux(packet, self._original)
                self.stats.original_packets += 1
            return
        stream = self._video_map.get(packet.stream_index)
        if stream is not None:
            self._mux(packet, stream)
            self.stats.video_packets += 1

    def _mux(self, packet: Packet[Any], stream: Stream) -> None:
        packet.stream = stream
        try:
            self._out.mux(packet)
        except av.error.FFmpegError as exc:
            raise MuxError(f"writing the output failed: {exc}") from None

    # ------------------------------------------------------------------ live

    def _due_s(self) -> float | None:
        queue = self._packets
        if queue.first_wall is None or queue.first_time_s is None or self._delay_s is None:
            return None
        return queue.first_time_s + (self._clock() - queue.first_wall) - self._delay_s

    def _source_done(self) -> bool:
        return self._packets.ended is not None

    def _run(self) -> None:
        """The writer thread: encode what comes in; live, release what is due."""
        tick = LIVE_TICK_S if self._delay_s is not None else None
        try:
            while True:
                try:
                    item = self._inbox.get(timeout=tick)
                except queue.Empty:
                    item = np.empty((0, 0), dtype=np.int16)  # nothing new: just release
                if item is None:
                    return
                if isinstance(item, _CueItem):
                    self._queue_cue(item)
                elif item.size:
                    self._convert(item)
                self._release_due()
        except MuxError as exc:  # a dropped destination: the run goes on, write()/close() say so
            logger.error("%s", exc)
            self._error = exc
            self._drain()
        except Exception as exc:  # a bug must not leave the pipeline blocked on a full queue
            logger.exception("the output writer failed")
            self._error = MuxError(f"writing the output failed: {exc!r}")
            self._drain()

    def _drain(self) -> None:
        """After an error: keep taking samples so the pipeline never blocks on a full queue."""
        while self._inbox.get() is not None:
            pass

    def _release_due(self) -> None:
        if self._delay_s is None:
            self._release(self._audio_end_s)
            return
        due = self._due_s()
        if due is None:
            return
        behind = due - self._audio_end_s
        self._release(due)
        if behind > self.stats.audio_behind_s and not self._source_done():
            self.stats.audio_behind_s = behind

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Flush the encoder, write what is left in time order, finalise the container."""
        if self._closed:
            return
        self._closed = True
        self._inbox.put(None)
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            self._encode(conversions.resample(self._resampler, None))
            self._queue_audio(conversions.encode(self._audio, None))
            # Stopped before the input ended (a signal): the reader had read ahead, and the
            # audio of that read-ahead is not written, so neither is its video. Otherwise
            # everything goes (video may legitimately outlast the audio).
            self._release(float("inf") if self._source_done() else self._audio_end_s)
        finally:
            try:
                self._out.close()
            except av.error.FFmpegError as exc:
                raise MuxError(f"finalising the output failed: {exc}") from None

    def summary(self) -> dict[str, Any]:
        """What was written, for the run summary."""
        return {
            "container": self.stats.container,
            "audio_codec": self.stats.audio_codec,
            "audio_rate": self.rate,
            "video_packets": self.stats.video_packets,
            "audio_packets": self.stats.audio_packets,
            "original_packets": self.stats.original_packets,
            "tracks": self.stats.tracks,
            **({"cues": self.stats.cues} if self._subtitles else {}),
            **(
                {"delay_s": self._delay_s, "audio_behind_s": round(self.stats.audio_behind_s, 3)}
                if self._delay_s is not None
                else {}
            ),
        }
