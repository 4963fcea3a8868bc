"""The echo path's audio conversions, counted: at most 8, each with its reason.

The worker runs in process against the real sts-service (echo backends, its own process).
Every change of form of the audio in the worker goes through `stream_worker.conversions`
(each function there says why it exists); this test wraps those functions and lists the
kinds of conversion a run's segments went through. sts-service's echo answers the
request's base64 text as it came, without decoding it: no conversion on that side
(sts-service's ``test_echo_answers_the_request_payload_without_a_conversion`` pins it).

A media file (48 kHz stereo AAC, with video) to a media file: 8 conversions. (A segment
after a cut inside speech also sends the tail of the segment before it as context for ASR:
a second ``to_wire`` of audio that already crossed, counted below, not a new kind.)

1. ``decode``: AAC packets to PCM frames (fltp);
2. ``resample`` to the service's s16, mono, 16 kHz, in one FFmpeg call;
3. ``to_samples``: the s16 frame to an int16 array, which the pipeline cuts and sends;
4. ``to_wire``: the array to base64 text of its bytes, the request's JSON;
5. ``from_wire``: the answer's base64 text to an int16 array (a view on the decoded bytes);
6. ``to_frame``: the array to an s16 frame, mono widened into the output's layout;
7. ``resample`` to the AAC encoder's fltp, stereo, 48 kHz;
8. ``encode``: PCM frames to AAC packets.

A WAV at 48 kHz stereo to a WAV (written at the source's format): 8, steps 1-7 with the s16
encoder-less resample in 7, then ``frame_to_pcm``, the resampler's frames straight to the
file's bytes. A WAV at the service's format to a WAV: 5 (decode, to_samples, to_wire,
from_wire, to_pcm): the resamplers pass the frames through, which is not a conversion.

Removed on the way to 8 (16 before): the intermediate ``bytes`` on both sides of the wire,
the service's decode and re-encode of audio its echo returns unchanged, a request encoded
again for each retry, and the WAV converter's frame -> array -> bytes (now frame -> bytes).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_support import decoded_seconds, make_media  # tests/ is on sys.path
from worker_support import tone

from shared_audio import AudioFormat, read_wav, write_wav
from stream_worker import conversions
from stream_worker.main import main

#: The longest audio frame of the codec used (AAC: 1024 samples at 48 kHz).
ONE_AAC_FRAME_S = 1024 / 48000
SECONDS = 2.0

MEDIA_PATH = [
    "decode",
    "resample to s16 mono 16000 Hz",
    "to_samples",
    "to_wire",
    "from_wire",
    "to_frame",
    "resample to fltp stereo 48000 Hz",
    "encode",
]
WAV_48K_STEREO_PATH = [
    "decode",
    "resample to s16 mono 16000 Hz",
    "to_samples",
    "to_wire",
    "from_wire",
    "to_frame",
    "resample to s16 stereo 48000 Hz",
    "frame_to_pcm",
]
WAV_SERVICE_FORMAT_PATH = ["decode", "to_samples", "to_wire", "from_wire", "to_pcm"]
MOST_CONVERSIONS = 8


class Conversions:
    """Which kinds of conversion ran, and how often each ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def kinds(self) -> list[str]:
        """Each kind once, in the order of `MEDIA_PATH` (the probe's request comes first)."""
        order = list(dict.fromkeys(MEDIA_PATH + WAV_48K_STEREO_PATH + ["to_pcm"]))
        known = [kind for kind in order if kind in self.calls]
        return known + sorted(set(self.calls) - set(order))

    def count(self, kind: str) -> int:
        return self.calls.count(kind)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Conversions]:
    seen = Conversions()
    names = [n for n in vars(conversions) if inspect.isfunction(getattr(conversions, n))]
    for name in names:
        function = getattr(conversions, name)
        if getattr(function, "__module__", None) != conversions.__name__:
            continue  # an imported name, not one of the module's conversions

        @functools.wraps(function)
        def wrapper(
            *args: Any,  # noqa: ANN401 - passes any conversion's arguments through
            _name: str = name,
            _function: Callable[..., Any] = function,
        ) -> Any:  # noqa: ANN401 - returns what the conversion returns
            result = _function(*args)
            if _name == "resample":
                resampler = args[0]
                if resampler.is_passthrough:
                    return result  # the frame itself, unchanged: not a conversion
                _name = (
                    f"resample to {resampler.format.name} {resampler.layout.name} "
                    f"{resampler.rate} Hz"
                )
            seen.calls.append(_name)
            return result

        monkeypatch.setattr(conversions, name, wrapper)
    yield seen


def run(src: Path, out: Path, url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    summary_path = out.with_name(out.name + ".json")
    argv = ["-i", str(src), "-o", str(out), "--sts-url", url, "--progress", "never",
            "--segmenter", "fixed", "--segment-ms", "1000", "--summary-json", str(summary_path),
            "--require-sts"]  # fmt: skip
    code = main(argv)
    assert code == 0, capsys.readouterr().err[-2000:]
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary


def assert_each_segment_crossed_the_wire_once(seen: Conversions, summary: dict[str, Any]) -> None:
    segments = summary["segments"]
    assert segments["dubbed"] == segments["total"] >= round(SECONDS)
    # One request per segment (plus the start-up's language-pair probe, a moment of silence
    # whose answer is not read), one answer read per segment: a conversion repeated on one
    # segment (a retry encoding the request again, a second decode) fails here. Each segment
    # after a fixed cut (a cut inside speech) also carries the last `--context-ms` of the
    # one before as `context_audio` (decision 0017): one more `to_wire`, of that tail.
    carrying_context = segments["total"] - 1
    assert seen.count("to_wire") == segments["total"] + 1 + carrying_context
    assert seen.count("from_wire") == segments["total"]


def test_a_media_file_is_dubbed_with_8_conversions(
    counted: Conversions,
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = make_media(tmp_path / "in.mp4", SECONDS, rate=48000, channels=2)
    summary = run(src, tmp_path / "out.mp4", start_sts().url, capsys)
    assert counted.kinds() == MEDIA_PATH
    assert len(MEDIA_PATH) <= MOST_CONVERSIONS
    assert_each_segment_crossed_the_wire_once(counted, summary)
    assert summary["input_frames"] == summary["output_frames"]
    dubbed_s = decoded_seconds(tmp_path / "out.mp4")
    assert abs(dubbed_s - decoded_seconds(src)) <= ONE_AAC_FRAME_S


def test_a_wav_at_the_source_format_is_dubbed_with_8_conversions(
    counted: Conversions,
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fmt = AudioFormat(48000, 2)
    write_wav(tmp_path / "in.wav", tone(SECONDS, fmt), fmt)
    summary = run(tmp_path / "in.wav", tmp_path / "out.wav", start_sts().url, capsys)
    assert counted.kinds() == WAV_48K_STEREO_PATH
    assert len(WAV_48K_STEREO_PATH) <= MOST_CONVERSIONS
    assert_each_segment_crossed_the_wire_once(counted, summary)
    out_fmt, samples = read_wav(tmp_path / "out.wav")
    assert out_fmt == fmt and samples.shape == (SECONDS * 48000, 2)


def test_a_wav_at_the_service_format_comes_back_bit_for_bit_with_5_conversions(
    counted: Conversions,
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fmt = AudioFormat(16000, 1)
    original = tone(SECONDS, fmt)
    write_wav(tmp_path / "in.wav", original, fmt)
    summary = run(tmp_path / "in.wav", tmp_path / "out.wav", start_sts().url, capsys)
    assert counted.kinds() == WAV_SERVICE_FORMAT_PATH
    assert_each_segment_crossed_the_wire_once(counted, summary)
    out_fmt, samples = read_wav(tmp_path / "out.wav")
    assert out_fmt == fmt
    np.testing.assert_array_equal(samples, original)


def test_the_dub_goes_back_up_without_an_image_near_8_khz() -> None:
    # The dub (16 kHz) back to a 48 kHz output: a 7 kHz tone must not come with its 9 kHz
    # image. PyAV's default resampler left it 37.6 dB down; the output's is at the 16-bit floor.
    fmt = AudioFormat(16000, 1)
    t = np.arange(16000) / 16000
    tone_7k = np.round(16000 * np.sin(2 * np.pi * 7000 * t)).astype(np.int16)[:, None]
    resampler = conversions.OutputResampler(format="flt", layout="mono", rate=48000)
    frames = resampler.resample(conversions.to_frame(tone_7k, fmt)) + resampler.resample(None)
    up = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    assert up.shape[0] == 48000
    spectrum = np.abs(np.fft.rfft(up[4800:-4800] * np.hanning(up.shape[0] - 9600)))
    hz = np.fft.rfftfreq(up.shape[0] - 9600, 1 / 48000)
    image = spectrum[(hz > 8500) & (hz < 9500)].max()
    assert 20 * np.log10(image / spectrum.max()) < -80


def test_no_module_converts_audio_outside_conversions() -> None:
    # What the counting above sees is everything only if every conversion goes through
    # `stream_worker.conversions`: the calls that change the audio's form appear nowhere else.
    package = Path(conversions.__file__).parent
    forms = (".to_ndarray(", "from_ndarray(", ".resample(", "codec_context.decode(",
             "_audio.encode(", "b64encode", "b64decode", "frombuffer", ".tobytes(",
             "pcm_to_array", "array_to_pcm", "from_pcm(", "from_samples(", ".samples()",
             "pcm_bytes(")  # fmt: skip
    for module in sorted(package.glob("*.py")):
        if module.name == "conversions.py":
            continue
        text = re.sub(r"conversions\.\w+\(", "", module.read_text())
        found = [form for form in forms if form in text]
        assert not found, f"{module.name} converts audio itself: {found}"
