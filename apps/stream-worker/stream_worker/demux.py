"""Media input through PyAV (FFmpeg): any file or live URL FFmpeg demuxes.

:class:`MediaSource` opens the input once (its header is parsed once), picks one audio track,
decodes it and resamples it to the format sts-service gets (e.g. 16 kHz mono S16). It is a
plain blocking iterator of ``int16`` ``(frames, channels)`` chunks, like the other readers, so
the pipeline runs it on its reader thread unchanged. Every other packet the output keeps
(video, and the original audio when it is kept) is handed, untouched, to a
:class:`PacketQueue` that the media sink empties as the dubbed audio catches up.

Timestamps: the output keeps the input's. A stream that starts late (e.g. MPEG-TS at 1.4 s)
keeps its start. A discontinuity (a source reconnecting and starting again at 0, or jumping
ahead) is removed by shifting every later packet by the same offset, so the output timeline
stays continuous and audio and video move together. (An MPEG-TS 33-bit wrap is unwrapped by
FFmpeg's demuxer itself.) A gap in the audio alone is filled with silence, so the samples
sent to the service always line up with the timeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

from shared_audio import AudioError, AudioFormat
from stream_worker import conversions
from stream_worker.media import TimedPacket, layout_name
from stream_worker.source import InputStats

logger = logging.getLogger(__name__)

Chunk = npt.NDArray[np.int16]

#: Schemes read as live sources (paced by the sender, run with a fixed output delay).
LIVE_SCHEMES = ("rtmp", "rtmps", "srt", "rtsp", "udp", "tcp", "http", "https", "rtp")
#: A jump of a stream's timestamps larger than this (forwards) is a discontinuity, not a gap.
DISCONTINUITY_S = 5.0
#: A jump backwards larger than this is a discontinuity (smaller ones are B-frame reordering).
BACKWARDS_S = 0.5
#: An audio gap longer than this is filled with silence (shorter ones are rounding).
AUDIO_GAP_S = 0.05
#: Video may run this far ahead of the audio; beyond it the audio is filled with silence,
#: so the video waiting for it stays bounded (30 s of a 8 Mb/s stream: 30 MB).
MAX_AUDIO_LAG_S = 30.0
#: A file whose audio ends this much before its declared duration was cut short.
TRUNCATION_SLACK_S = 0.5
#: The MPEG-TS clock: 90 kHz, 33 bits.
TS_TIME_BASE = Fraction(1, 90000)
TS_WRAP = 2**33
#: How far FFmpeg may read to learn a late track's format (time, and bytes).
LONG_PROBE_S = 60.0
LONG_PROBE_BYTES = str(200 * 1024 * 1024)
#: Open timeout, and how long a live source may stay silent before it counts as dropped.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0


class MediaError(AudioError):
    """The input cannot be opened or decoded (named, with FFmpeg's reason)."""


def is_live_url(target: str) -> bool:
    """Whether ``target`` is a network URL (a live source or destination)."""
    scheme, sep, _ = target.partition("://")
    return bool(sep) and scheme.lower() in LIVE_SCHEMES


class PacketQueue:
    """Packets demuxed on the reader thread, waiting for the sink (thread safe, FIFO).

    The sink takes a packet once the dubbed audio has reached its time (or, live, once its
    output slot is due), so video leaves in step with the audio written beside it.

    The one channel from the reader thread to the writer: besides the packets it carries
    what the reader learns while reading (each attribute is written by the reader only, once
    or monotonically, and read by the writer; plain attribute stores are atomic in Python).

    Attributes:
        first_wall: Clock time the first packet was read (live pacing).
        first_time_s: That packet's time.
        audio_start_s: Time of the first audio sample (the dubbed track starts there).
        ended: How the input ended (None while it is being read).
    """

    def __init__(self) -> None:
        self._packets: deque[TimedPacket] = deque()
        self.first_wall: float | None = None
        self.first_time_s: float | None = None
        self.audio_start_s: float | None = None
        self.ended: str | None = None

    def __len__(self) -> int:
        return len(self._packets)

    def put(self, item: TimedPacket) -> None:
        """Append a packet (reader thread)."""
        self._packets.append(item)

    def take_until(self, time_s: float) -> list[Packet[Any]]:
        """Remove and return, in order, the packets whose time is at most ``time_s``."""
        return [item.packet for item in self.take_timed_until(time_s)]

    def take_timed_until(self, time_s: float) -> list[TimedPacket]:
        """`take_until`, each packet with its time (to merge it with other streams)."""
        taken: list[TimedPacket] = []
        packets = self._packets
        while packets and packets[0].time_s <= time_s:
            taken.append(packets.popleft())
        return taken

    def take_all(self) -> list[Packet[Any]]:
        """Remove and return every packet still queued."""
        return self.take_until(float("inf"))


@dataclass(frozen=True)
class MediaInfo:
    """The input as opened: fixed once the source exists (what changes is in `PacketQueue`).

    The stream objects are only valid while the input is open: the sink uses them as
    templates when it is created (before reading starts) and the plain values after, because
    the reader thread closes the input as soon as it reaches the end.

    Attributes:
        audio: The chosen audio stream (template for the original track).
        video: Video streams, passed through without re-encoding (templates).
        audio_index: The chosen audio stream's index (its packets' ``stream_index``).
        audio_codec: Its decoder's name.
        source_rate: Its sample rate (the output's).
        source_channels: Its channel count.
        source_layout: Its channel layout name (e.g. ``stereo``).
        live: Whether the source is live (network URL or paced file).
    """

    audio: AudioStream
    video: tuple[Stream, ...]
    audio_index: int
    audio_codec: str
    source_rate: int
    source_channels: int
    source_layout: str
    live: bool


class _Timeline:
    """Removes timestamp discontinuities with one offset per epoch, shared by every stream.

    Streams are interleaved with some skew, so after a jump the other streams still deliver
    a few packets from before it. Each stream therefore moves to the new epoch at its own
    jump: the first stream to jump opens the epoch (continuing where the output left off),
    the others join it when they jump too.
    """

    def __init__(self, reference: int | None = None) -> None:
        self.offsets = [0.0]
        self._last_raw: dict[int, float] = {}
        self._epoch: dict[int, int] = {}
        self._end_s = float("-inf")
        self._start_s = float("inf")
        self._raw_end_s = float("-inf")
        self._reference = reference

    def read_s(self) -> float:
        """How much the packets read cover, in seconds, for the truncation check.

        The larger of the span read (first to last time, splices removed) and the last
        time as stamped: a header's duration is one or the other depending on the container
        (Matroska declares where it ends, MPEG-TS and MP4 how long they last).
        """
        if self._end_s < self._start_s:
            return 0.0
        return max(self._end_s - self._start_s, self._raw_end_s)

    def unwrap(self, stamp: int, time_base: Fraction) -> int:
        """``stamp`` moved by whole 33-bit periods to the one nearest the last stamp seen.

        An MPEG-TS clock (90 kHz) wraps every 2**33 ticks (26.5 h). FFmpeg unwraps it only
        relative to where it started, so a stray early stamp (an AAC priming packet at
        -21 ms becomes 26.5 h) or a wrap it judged the other way shows up as a 26.5 h jump;
        a jump that size is the wrap, never a discontinuity.
        """
        if time_base != TS_TIME_BASE:
            return stamp
        if self._reference is not None:
            stamp += round((self._reference - stamp) / TS_WRAP) * TS_WRAP
        return stamp

    def start_at_zero(self, starts_s: list[float]) -> None:
        """Shift the first epoch so that none of ``starts_s`` (the streams' starts) is < 0.

        FFmpeg unwraps an MPEG-TS that starts shortly before its clock wraps by making the
        timestamps before the wrap negative, and MP4 hides media before 0 behind its edit
        list (half of such a file became unplayable).
        """
        first = min(starts_s, default=0.0)
        if first < 0:
            self.offsets[0] = -first
            logger.warning(
                "input timestamps start at %.3f s (a clock wrap unwrapped backwards): "
                "the output is shifted to start at 0",
                first,
            )

    @property
    def discontinuities(self) -> int:
        """Discontinuities removed so far."""
        return len(self.offsets) - 1

    def correct(self, packet: Packet[Any]) -> float | None:
        """Shift ``packet``'s timestamps in place; returns its corrected time in seconds."""
        given = packet.dts if packet.dts is not None else packet.pts
        if given is None or packet.time_base is None:
            return None
        tb = packet.time_base
        stamp = self.unwrap(given, tb)
        self._reference = stamp
        wrap_shift = stamp - given
        raw_s = float(stamp * tb)
        index = packet.stream_index
        epoch = self._epoch.get(index, len(self.offsets) - 1)
        last = self._last_raw.get(index)
        # A decode timestamp never goes back within one stream, so any step back in DTS is a
        # discontinuity, however small (a muxer refuses non-monotonic DTS). Only a packet
        # without DTS is judged by its PTS, which B-frame reordering moves back a little.
        back_s = 0.0 if packet.dts is not None else BACKWARDS_S
        if last is not None and (raw_s < last - back_s or raw_s > last + DISCONTINUITY_S):
            if epoch < len(self.offsets) - 1:  # another stream already jumped: join it
                epoch = len(self.offsets) - 1
            else:  # the first to jump: continue right where the output left off
                self.offsets.append(self._end_s - raw_s)
                epoch += 1
                logger.warning(
                    "input timestamps jump from %.3f s to %.3f s: treated as a "
                    "discontinuity, the output continues at %.3f s",
                    last,
                    raw_s,
                    self._end_s,
                )
        self._epoch[index] = epoch
        self._last_raw[index] = raw_s
        offset_s = self.offsets[epoch]
        if offset_s or wrap_shift:
            shift = round(offset_s / tb) + wrap_shift
            if packet.pts is not None:
                packet.pts += shift
            if packet.dts is not None:
                packet.dts += shift
        time_s = raw_s + offset_s
        duration_s = float(packet.duration * tb) if packet.duration else 0.0
        self._end_s = max(self._end_s, time_s + duration_s)
        self._start_s = min(self._start_s, time_s)
        self._raw_end_s = max(self._raw_end_s, raw_s + duration_s)
        return time_s


class MediaSource:
    """Reads one audio track of a media file or live URL, as service-format chunks.

    Args:
        target: A path or URL FFmpeg can open.
        service_fmt: The rate and channels sts-service gets.
        audio_track: Which audio track (0 = the first).
        keep_video: Queue video packets for the sink.
        keep_original_audio: Queue the original audio packets for the sink too.
        live: Treat the input as live (defaults to whether ``target`` is a network URL).
        read_timeout_s: How long a live source may stay silent before it counts as dropped.
        chunk_ms: Chunks handed on are gathered up to this length (fewer hand-overs).

    Raises:
        MediaError: the input cannot be opened, has no audio, or no such track.
    """

    def __init__(
        self,
        target: str,
        service_fmt: AudioFormat,
        *,
        audio_track: int = 0,
        keep_video: bool = True,
        keep_original_audio: bool = False,
        live: bool | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
        chunk_ms: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.format = service_fmt
        self.stats = InputStats()
        self._chunk_frames = max(1, service_fmt.frames_for_ms(chunk_ms))
        self._clock = clock
        self._closed = threading.Event()
        self._read_timeout_s = read_timeout_s
        self._timeline = _Timeline()
        network = is_live_url(target)
        # A file is probed long: a track that starts late (a TS whose audio PID carries
        # nothing for its first 20 s) has no rate after FFmpeg's default 5 s, and reading
        # ahead in a file costs milliseconds. A live source is probed long only if needed.
        self._container: InputContainer = self._open(read_timeout_s, long_probe=not network)
        try:
            if network and self._lacks_rate(audio_track):
                self._container.close()
                logger.warning(
                    "%s: audio track %d has no rate yet: probing the source for up to %g s",
                    target,
                    audio_track,
                    LONG_PROBE_S,
                )
                self._container = self._open(read_timeout_s, long_probe=True)
            audio = self._pick_audio(audio_track)
        except BaseException:
            self._container.close()
            raise
        self._audio = audio
        audio.codec_context.thread_type = "AUTO"
        self.packets = PacketQueue()
        self.info = MediaInfo(
            audio=audio,
            video=tuple(self._container.streams.video) if keep_video else (),
            audio_index=audio.index,
            audio_codec=audio.codec_context.name,
            source_rate=int(audio.rate),
            source_channels=int(audio.channels),
            source_layout=str(audio.layout.name),
            live=is_live_url(target) if live is None else live,
        )
        self._keep_original = keep_original_audio
        self._timeline = self._new_timeline([*self.info.video, audio])
        self._covered = 0  # service frames handed on (the audio timeline read so far)
        self._resampler = self._new_resampler()
        # Whether a frame went through the resampler: from then on all do (it holds samples).
        self._resampling = False
        self.duration_s = self._declared_duration()

    @property
    def ended(self) -> str | None:
        """How the input ended (None while it is being read), for the summary."""
        return self.packets.ended

    @property
    def discontinuities(self) -> int:
        """Timestamp discontinuities removed so far."""
        return self._timeline.discontinuities

    def _open(self, read_timeout_s: float, *, long_probe: bool) -> InputContainer:
        target = self.target
        options = (
            {"analyzeduration": str(int(LONG_PROBE_S * 1_000_000)), "probesize": LONG_PROBE_BYTES}
            if long_probe
            else {}
        )
        try:
            return av.open(
                target, mode="r", timeout=(OPEN_TIMEOUT_S, read_timeout_s), options=options
            )
        except av.error.ProtocolNotFoundError:
            raise MediaError(unavailable_protocol(target)) from None
        except OSError as exc:  # FFmpeg's file errors are OSErrors too: name the cause only
            raise MediaError(f"{target}: {_reason(exc)}") from None
        except av.error.FFmpegError as exc:
            raise MediaError(f"{target}: cannot open: {_reason(exc)}") from None

    def _lacks_rate(self, track: int) -> bool:
        streams = list(self._container.streams.audio)
        return 0 <= track < len(streams) and not streams[track].rate

    def _pick_audio(self, track: int) -> AudioStream:
        streams = list(self._container.streams.audio)
        if not streams:
            kinds = ", ".join(s.type for s in self._container.streams) or "no streams"
            raise MediaError(f"{self.target}: has no audio track ({kinds})")
        if not 0 <= track < len(streams):
            raise MediaError(
                f"{self.target}: has {len(streams)} audio track(s); --audio-track {track} "
                f"does not exist (0 is the first)"
            )
        stream = streams[track]
        if stream.codec_context is None or not stream.rate:
            raise MediaError(f"{self.target}: audio track {track} has no decoder or no rate")
        return stream

    def _new_timeline(self, streams: list[Stream]) -> _Timeline:
        """A timeline referred to the first stream's start (video first: audio has priming)."""
        known = [s for s in streams if s.start_time is not None and s.time_base is not None]
        timeline = _Timeline()
        if not known:
            return timeline
        first = known[0]
        assert first.start_time is not None and first.time_base is not None  # filtered above
        timeline = _Timeline(first.start_time if first.time_base == TS_TIME_BASE else None)
        timeline.start_at_zero(
            [
                float(timeline.unwrap(s.start_time, s.time_base) * s.time_base)
                for s in known
                if s.start_time is not None and s.time_base is not None
            ]
        )
        return timeline

    def _new_resampler(self) -> AudioResampler:
        return AudioResampler(
            format="s16", layout=layout_name(self.format.channels), rate=self.format.sample_rate
        )

    def _declared_duration(self) -> float | None:
        if self.info.live:
            return None
        stream = self._audio
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if self._container.duration is not None:
            return self._container.duration / av.time_base
        return None

    def close(self) -> None:
        """Stop reading (any thread) and close the input (idempotent)."""
        self._closed.set()

    def __iter__(self) -> Iterator[Chunk]:
        pending: list[Chunk] = []
        frames = 0
        try:
            for chunk in self._read():
                pending.append(chunk)
                frames += chunk.shape[0]
                if frames >= self._chunk_frames:
                    yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                    pending, frames = [], 0
        except MediaError:
            if pending:  # what was read before the error is still written
                yield np.concatenate(pending)
            raise
        finally:
            self._container.close()
        if pending:
            yield np.concatenate(pending)

    def _read(self) -> Iterator[Chunk]:
        streams: list[Stream] = [self._audio, *self.info.video]
        wanted = {s.index for s in streams}
        queue = self.packets
        try:
            for packet in self._container.demux(streams):
                if self._closed.is_set():
                    return
                if packet.size == 0 and packet.dts is None:
                    # End-of-stream marker: PyAV gives it stream_index 0 whatever its
                    # stream, so it cannot be routed; the decoder is flushed below instead.
                    continue
                if packet.stream_index not in wanted:
                    continue
                time_s = self._timeline.correct(packet)
                if queue.first_wall is None and time_s is not None:
                    queue.first_wall, queue.first_time_s = self._clock(), time_s
                if packet.stream_index != self._audio.index:
                    if time_s is not None:
                        queue.put(TimedPacket(time_s, packet))
                        yield from self._counted(self._fill_behind(time_s))
                    continue
                if self._keep_original and time_s is not None and packet.size:
                    queue.put(TimedPacket(time_s, packet))
                for frame in self._decode(packet):
                    yield from self._counted(self._to_service(frame))
            # Frames the decoder still holds (frame threading, lookahead): without this the
            # last ~0.1-1 s of FLAC, ALAC or WavPack would be lost.
            for frame in self._decode(None):
                yield from self._counted(self._to_service(frame))
            yield from self._counted(self._flush())
        except av.error.ExitError:  # FFmpeg's read timeout fired: nothing came for that long
            self.packets.ended = f"dropped: no data for {self._read_timeout_s:g} s"
            raise MediaError(
                f"{self.target}: the source stopped sending (no data for "
                f"{self._read_timeout_s:g} s); the output was finalised here"
            ) from None
        except av.error.FFmpegError as exc:
            self.packets.ended = f"error: {_reason(exc)}"
            raise MediaError(f"{self.target}: {_reason(exc)} (input ended here)") from None
        self.packets.ended = "end of stream"
        if self.stats.frames == 0:
            raise MediaError(f"{self.target}: the audio track has no decodable samples")
        self._check_complete()

    def _counted(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """Pass ``chunks`` on, counting them as covered timeline (before each is handed on)."""
        for chunk in chunks:
            self._covered += chunk.shape[0]
            self.stats.frames += chunk.shape[0]
            yield chunk

    def _audio_end_s(self) -> float | None:
        start = self.packets.audio_start_s
        return None if start is None else start + self._covered / self.format.sample_rate

    def _decode(self, packet: Packet[Any] | None) -> list[AudioFrame]:
        try:
            return conversions.decode(self._audio.codec_context, packet)
        except av.error.InvalidDataError as exc:  # one damaged packet: skip it, keep going
            logger.warning("%s: skipped an undecodable audio packet: %s", self.target, exc)
            return []

    def _fill_behind(self, video_s: float) -> Iterator[Chunk]:
        """Silence for audio that lags the video by more than `MAX_AUDIO_LAG_S`.

        Video waits in the queue until the audio reaches its time: without this, a long gap
        in the audio (or audio that ends early) kept every video packet in memory until the
        audio came back or the file ended. Audio that then comes for time already filled is
        dropped (see `_to_service`).
        """
        end_s = self._audio_end_s()
        if end_s is None or video_s - end_s <= MAX_AUDIO_LAG_S:
            return
        yield from self._flush()  # what the resampler holds belongs before the silence
        self._resampler = self._new_resampler()
        end_s = self._audio_end_s()
        assert end_s is not None  # set above
        frames = round((video_s - MAX_AUDIO_LAG_S / 2 - end_s) * self.format.sample_rate)
        if frames > 0:
            logger.warning(
                "%s: no audio for %.3f s of video: filled with silence",
                self.target,
                frames / self.format.sample_rate,
            )
            yield np.zeros((frames, self.format.channels), dtype=np.int16)

    def _to_service(self, frame: AudioFrame) -> Iterator[Chunk]:
        if frame.pts is not None and frame.time_base is not None:
            start_s = float(frame.pts * frame.time_base)
            if self.packets.audio_start_s is None:
                self.packets.audio_start_s = start_s
            end_s = self._audio_end_s()
            assert end_s is not None  # set above
            if start_s - end_s > AUDIO_GAP_S:
                yield from self._flush()  # what the resampler holds belongs before the gap
                self._resampler = self._new_resampler()
                end_s = self._audio_end_s()
                assert end_s is not None
                gap_s = start_s - end_s
                frames = round(gap_s * self.format.sample_rate)
                logger.warning(
                    "%s: %.3f s gap in the audio filled with silence", self.target, gap_s
                )
                yield np.zeros((frames, self.format.channels), dtype=np.int16)
            elif start_s + frame.samples / frame.sample_rate < end_s - AUDIO_GAP_S:
                return  # wholly inside time already written (or filled): drop, keep time
        if not self._resampling and self._in_service_format(frame):
            yield conversions.to_samples(frame, self.format.channels)
            return
        self._resampling = True
        frame.pts = None  # the resampler keeps its own count; the timeline is kept above
        for out in conversions.resample(self._resampler, frame):
            yield conversions.to_samples(out, self.format.channels)

    def _in_service_format(self, frame: AudioFrame) -> bool:
        """Whether ``frame`` is already packed s16 at the service's rate and channel count.

        Then it needs no resampling. FFmpeg's own passthrough misses it when the layout is
        named differently: the WAV decoder calls mono "1 channels", and swresample copied
        every frame for nothing.
        """
        return (
            frame.format.name == "s16"
            and frame.sample_rate == self.format.sample_rate
            and frame.layout.nb_channels == self.format.channels
        )

    def _flush(self) -> Iterator[Chunk]:
        """What the resampler holds (nothing when no frame needed it).

        Its callers replace it with a new one, or have no more frames.
        """
        if not self._resampling:
            return
        self._resampling = False
        for out in conversions.resample(self._resampler, None):
            yield conversions.to_samples(out, self.format.channels)

    def _check_complete(self) -> None:
        """A file is truncated when what was read ends well before its declared duration.

        Judged by the packets read (every stream, splices removed), never by the audio alone
        or by where the timeline starts: a Matroska file starting at 10 s, a TS with a jump
        or audio that ends early are complete.
        """
        declared = self.duration_s
        if declared is None:
            return
        got = self._timeline.read_s()
        if got < declared - TRUNCATION_SLACK_S:
            raise MediaError(
                f"{self.target}: truncated: declares {declared:.3f} s, "
                f"only {got:.3f} s could be read"
            )


def unavailable_protocol(target: str) -> str:
    """Why ``target``'s protocol cannot be used (FFmpeg said "Protocol not found")."""
    scheme = target.partition(":")[0]
    return (
        f"{target}: {scheme}:// is not available: the FFmpeg bundled in PyAV's wheel is "
        f"built without it (srt:// needs libsrt); relay it through a tool that has it "
        f"(ffmpeg, srt-live-transmit) over udp:// or tcp://"
    )


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the errno noise."""
    strerror: Any = getattr(exc, "strerror", None)
    return str(strerror or exc)
