"""Every change of form of the audio in the worker: one named function per kind of conversion.

The audio of one segment, from a media input to a media output (sts-service's echo answers
the request's base64 text as it came, without a conversion of its own)::

    decode -> resample -> to_samples -> to_wire ~~ sts-service ~~ from_wire
           -> to_frame -> resample -> encode

Raw PCM and WAV ends take `from_pcm`, `to_pcm` and `frame_to_pcm` instead of the codec ends.
Cutting, reordering, fitting and copying ``(frames, channels)`` int16 arrays keep the form and
are not conversions; neither are the float copies the VAD and the level checks read (the
audio itself goes on unchanged). Code that changes the audio's form calls these functions
through the module (``conversions.decode(...)``), never inline, so that each has its reason
written here once and a test can count them on a segment's path.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.layout import AudioLayout
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.filter import Graph
from av.packet import Packet

from shared_audio import AudioFormat, array_to_pcm, pcm_to_array
from shared_utils.contract import AudioPayload
from stream_worker.media import layout_name, widen

Samples = npt.NDArray[np.int16]


def decode(codec: AudioCodecContext, packet: Packet[Any] | None) -> list[AudioFrame]:
    """A compressed packet's audio as frames in the decoder's own format (None: flush).

    Why: the input's codec (AAC, Opus, FLAC, PCM in WAV...) is FFmpeg's to read.
    """
    return list(codec.decode(packet))


def resample(
    resampler: AudioResampler | OutputResampler, frame: AudioFrame | None
) -> list[AudioFrame]:
    """``frame`` in the resampler's sample format, layout and rate, in one FFmpeg call.

    Why: the service takes 16-bit PCM at its rate and channels, an encoder its own format at
    the output's rate and layout; swresample does the three changes at once, keeping its
    filter state across frames (no click at a frame edge). A frame already in that format
    is passed through untouched (PyAV's passthrough), so it costs nothing there.

    FFmpeg's rather than soxr (which sts-service uses on arrays): it takes the decoder's frames
    in any sample format and does format, layout and rate in this one step, where soxr would
    add a float array, a mix and a dtype change on each side; CPU is a wash (over 1500x real
    time both); ``bench/bench_resample.py`` measures both. The dub's way back up takes
    `OutputResampler`, whose longer filter leaves no image near 8 kHz.
    """
    return list(resampler.resample(frame))


class OutputResampler:
    """FFmpeg's resampler (swresample) with a 64-tap filter, for the dub's way back up.

    PyAV's `AudioResampler` takes no options, and its default 32-tap filter leaves the image
    of a 7 kHz tone 37.6 dB down when upsampling 16 to 48 kHz (a sibilant's, at 9 kHz);
    with 64 taps it is 94.7 dB down, the 16-bit floor, at about half the speed (16 kHz mono
    to 48 kHz stereo: 3454x real time instead of 6227x; ``bench/bench_resample.py``).
    Downsampling to the service is clean with the default (95.3 dB), so the input keeps
    `AudioResampler` and its passthrough. Same interface: `resample` takes a frame, or None
    to flush.
    """

    #: Never a passthrough: where it is used the format or the rate changes (the attribute
    #: keeps `AudioResampler`'s interface).
    is_passthrough = False

    def __init__(self, format: str, layout: str, rate: int) -> None:
        self.format = av.AudioFormat(format)
        self.layout = AudioLayout(layout)
        self.rate = rate
        self._graph: Graph | None = None
        self._samples_in = 0

    def _open(self, frame: AudioFrame) -> Graph:
        graph = Graph()
        source = graph.add_abuffer(
            format=frame.format.name,
            sample_rate=frame.sample_rate,
            layout=frame.layout.name,
            time_base=Fraction(1, frame.sample_rate),
        )
        options = f"osr={self.rate}:osf={self.format.name}:ochl={self.layout.name}:filter_size=64"
        swr = graph.add("aresample", options)
        sink = graph.add("abuffersink")
        source.link_to(swr)
        swr.link_to(sink)
        graph.configure()
        return graph

    def resample(self, frame: AudioFrame | None) -> list[AudioFrame]:
        """What ``frame`` gives at the output format (None: what the filter still holds)."""
        if frame is None:
            if self._graph is None:
                return []
            self._graph.push(None)
        else:
            if self._graph is None:
                self._graph = self._open(frame)
            frame.pts = self._samples_in  # the filter needs a timeline; the caller keeps its own
            frame.time_base = Fraction(1, frame.sample_rate)
            self._samples_in += frame.samples
            self._graph.push(frame)
        out: list[AudioFrame] = []
        while True:
            try:
                pulled = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            assert isinstance(pulled, AudioFrame)  # an audio graph gives audio frames
            out.append(pulled)


def to_samples(frame: AudioFrame, channels: int) -> Samples:
    """A packed s16 frame's samples as ``(frames, channels)`` int16 (a copy out of FFmpeg).

    Why: the pipeline cuts, reorders and sends numpy arrays, which outlive FFmpeg's buffers.
    """
    return np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1, channels)


def to_frame(samples: Samples, fmt: AudioFormat, layout: str | None = None) -> AudioFrame:
    """``(frames, channels)`` int16 samples as one packed s16 frame at ``fmt``'s rate.

    Why: FFmpeg's resampler and encoders take frames. With ``layout`` (where the frame goes
    next), mono samples are first `widen`-ed into it, so no resampler after this upmixes
    them (FFmpeg's upmix attenuates; see `mono_slots`). Other channel counts keep their own
    layout: FFmpeg maps stereo into a wider layout at full level, and a downmix is FFmpeg's.
    """
    name = layout_name(fmt.channels)
    if layout is not None and fmt.channels == 1 and AudioLayout(layout).nb_channels > 1:
        samples, name = widen(samples, layout), layout
    frame = AudioFrame.from_ndarray(
        np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=name
    )
    frame.sample_rate = fmt.sample_rate
    return frame


def encode(stream: AudioStream, frame: AudioFrame | None) -> list[Packet[Any]]:
    """A frame in the encoder's format as compressed packets (None: flush the encoder).

    Why: the output container carries the dub in its codec (AAC, Opus).
    """
    return list(stream.encode(frame))


def drop_head(frame: AudioFrame, count: int, layout: str) -> AudioFrame:
    """``frame`` without its first ``count`` samples (an encoder's priming, FLV and MPEG-TS).

    Why: FFmpeg has no call that cuts a frame, so it goes through an array and back, in the
    frame's own sample format (no dtype change). One frame per output at most.
    """
    data = frame.to_ndarray()
    cut = count if frame.format.is_planar else count * frame.layout.nb_channels
    rest = AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, cut:]),  # type: ignore[arg-type]  # the dtype it came with
        format=frame.format.name,
        layout=layout,
    )
    rest.sample_rate = frame.sample_rate
    return rest


def to_wire(samples: Samples, fmt: AudioFormat) -> AudioPayload:
    """Samples as the contract's payload: base64 text of their bytes, in one step.

    Why: the request is JSON, which carries text.
    """
    return AudioPayload.from_samples(samples, fmt)


def from_wire(payload: AudioPayload) -> Samples:
    """A payload's samples as ``(frames, channels)`` int16 (a read-only view, one copy).

    Why: the dub goes on as samples, like the original audio it replaces.
    """
    return payload.samples()


def from_pcm(data: bytes, fmt: AudioFormat) -> Samples:
    """Raw interleaved S16LE bytes (stdin) as ``(frames, channels)`` int16 samples.

    Why: raw PCM comes as bytes; the pipeline works on arrays.
    """
    samples: Samples = pcm_to_array(data, fmt)
    return samples


def to_pcm(samples: Samples, fmt: AudioFormat) -> bytes:
    """Samples as raw interleaved S16LE bytes (stdout, and WAV at the service's format).

    Why: files and pipes take bytes.
    """
    return array_to_pcm(samples, fmt)


def frame_to_pcm(frame: AudioFrame, fmt: AudioFormat) -> bytes:
    """A packed s16 frame's samples as raw interleaved S16LE bytes, straight from its buffer.

    Why: a WAV written at the source's format takes the resampler's frames as bytes, with no
    array kept in between (the view below is on the frame's own buffer).
    """
    count = frame.samples * fmt.channels
    view = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count)
    pcm: bytes = view.astype("<i2", copy=False).tobytes()
    return pcm
