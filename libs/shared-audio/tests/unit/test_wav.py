from __future__ import annotations

import io
import struct
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared_audio import (
    AudioFormat,
    PcmError,
    SampleEncoding,
    WavError,
    WavStreamWriter,
    iter_wav_chunks,
    read_wav,
    write_wav,
)

WavBytes = Callable[..., bytes]


def stdlib_wav(frames: bytes, *, channels: int, width: int, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def test_write_then_read_round_trip_stereo(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = rng.integers(-32768, 32768, size=(1000, 2), dtype=np.int16)
    fmt = AudioFormat(48000, 2)
    path = tmp_path / "stereo.wav"
    write_wav(path, samples, fmt)
    read_fmt, back = read_wav(path)
    assert read_fmt == fmt
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, samples)
    with wave.open(str(path), "rb") as check:
        assert (check.getnchannels(), check.getsampwidth(), check.getframerate()) == (2, 2, 48000)
        assert check.getnframes() == 1000


def test_write_accepts_str_path_and_1d_mono(tmp_path: Path) -> None:
    path = str(tmp_path / "mono.wav")
    write_wav(path, np.array([1, 2, 3], dtype=np.int16), AudioFormat(8000, 1))
    fmt, back = read_wav(path)
    assert fmt == AudioFormat(8000, 1)
    assert back.tolist() == [[1], [2], [3]]


def test_empty_wav_round_trip() -> None:
    buffer = io.BytesIO()
    write_wav(buffer, np.zeros((0, 1), dtype=np.int16), AudioFormat(16000, 1))
    buffer.seek(0)
    fmt, back = read_wav(buffer)
    assert back.shape == (0, 1)
    assert fmt.channels == 1
    assert not buffer.closed  # file objects passed in stay open


def test_read_8bit_unsigned() -> None:
    frames = bytes([0, 128, 255, 129])
    _, samples = read_wav(io.BytesIO(stdlib_wav(frames, channels=1, width=1)))
    assert samples.ravel().tolist() == [-32768, 0, 127 * 256, 256]


def test_read_24bit_keeps_top_16_bits() -> None:
    values = [0x7FFFFF, -0x800000, 0x000100, -1, 0x123456]
    frames = b"".join(struct.pack("<i", v)[:3] for v in values)
    _, samples = read_wav(io.BytesIO(stdlib_wav(frames, channels=1, width=3)))
    assert samples.ravel().tolist() == [v >> 8 for v in values]
    assert samples.ravel().tolist() == [32767, -32768, 1, -1, 0x1234]


def test_read_32bit_stereo_keeps_top_16_bits() -> None:
    values = [0x7FFFFFFF, -0x80000000, 0x00010000, -1]
    frames = struct.pack("<4i", *values)
    fmt, samples = read_wav(io.BytesIO(stdlib_wav(frames, channels=2, width=4, rate=44100)))
    assert fmt == AudioFormat(44100, 2, SampleEncoding.S16LE)
    assert samples.tolist() == [[32767, -32768], [1, -1]]


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_every_width_gives_the_same_16bit_signal(width: int) -> None:
    reference = np.array([-32768, -256, 0, 256, 32512], dtype=np.int16)
    if width == 1:
        frames = ((reference.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    else:
        wide = reference.astype(np.int64) << (8 * (width - 2))
        frames = b"".join(int(v).to_bytes(width, "little", signed=True) for v in wide)
    _, samples = read_wav(io.BytesIO(stdlib_wav(frames, channels=1, width=width)))
    np.testing.assert_array_equal(samples.ravel(), reference)


def test_float_wav_is_rejected_naming_file(tmp_path: Path, wav_bytes: WavBytes) -> None:
    path = tmp_path / "float.wav"
    path.write_bytes(wav_bytes(frames=struct.pack("<2f", 0.1, 0.2), bits=32, format_tag=3))
    with pytest.raises(WavError, match=r"float\.wav: .*format 3 \(IEEE float\) is not supported"):
        read_wav(path)


def test_unknown_format_tag(wav_bytes: WavBytes) -> None:
    data = wav_bytes(frames=b"\x00\x00", format_tag=0x1234)
    with pytest.raises(WavError, match=r"<BytesIO>: .*format 4660 \(unknown\)"):
        read_wav(io.BytesIO(data))


def test_more_than_two_channels(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    path.write_bytes(stdlib_wav(b"\x00\x00" * 6, channels=6, width=2))
    with pytest.raises(WavError, match=r"surround\.wav: 6 channels are not supported"):
        read_wav(path)


def test_unsupported_rate(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    path.write_bytes(stdlib_wav(b"\x00\x00", channels=1, width=2, rate=11025))
    with pytest.raises(WavError, match=r"odd\.wav: sample_rate 11025 Hz is not supported"):
        read_wav(path)


def test_wider_than_32_bits(wav_bytes: WavBytes) -> None:
    data = wav_bytes(frames=b"\x00" * 5, bits=40)
    with pytest.raises(WavError, match="40-bit samples are not supported"):
        read_wav(io.BytesIO(data))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a WAV file or truncated header"),
        (b"hello world, definitely not audio", "does not start with RIFF"),
        (b"RIFF\x04\x00\x00\x00AVI ", "not a WAVE file"),
    ],
)
def test_not_a_wav_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(WavError, match=rf"notes\.txt: .*{message}"):
        read_wav(path)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(chunk_id: bytes, data: bytes, *, size: int | None = None, pad: bool = True) -> bytes:
    declared = len(data) if size is None else size
    padding = b"\0" if pad and len(data) % 2 else b""
    return chunk_id + struct.pack("<I", declared) + data + padding


FMT_CHUNK = chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16))
DATA_CHUNK = chunk(b"data", b"\x01\x00" * 100)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            riff(FMT_CHUNK, chunk(b"LIST", b"abc", pad=False), DATA_CHUNK),
            "chunk 'LIST' at byte 36 has an odd size (3) but no pad byte after it",
        ),
        (
            riff(chunk(b"fmt ", FMT_CHUNK[8:] + b"x", pad=False), DATA_CHUNK),
            "chunk 'fmt ' at byte 12 has an odd size (17) but no pad byte",
        ),
        (
            riff(FMT_CHUNK, chunk(b"LIST", b"abc", size=100000), DATA_CHUNK),
            "chunk 'LIST' at byte 36 declares 100000 bytes, running past the end of the file",
        ),
        (
            riff(chunk(b"fmt ", FMT_CHUNK[8:], size=1000)),
            "chunk 'fmt ' at byte 12 declares 1000 bytes, running past the end",
        ),
        (
            riff(FMT_CHUNK, b"\x00\x01\x02\x03" + struct.pack("<I", 9999)),
            "no chunk header at byte 36",
        ),
    ],
)
def test_malformed_chunks_name_the_chunk_and_where(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    for read in (read_wav, lambda p: iter_wav_chunks(p, 160)):
        with pytest.raises(WavError) as info:
            read(path)
        assert str(info.value).startswith(f"{path}: not a valid WAV file: ")
        assert message in str(info.value)


def test_odd_last_chunk_without_pad_byte_is_harmless() -> None:
    fmt, samples = read_wav(
        io.BytesIO(riff(FMT_CHUNK, DATA_CHUNK, chunk(b"LIST", b"abc", pad=False)))
    )
    assert samples.shape == (100, 1) and fmt.sample_rate == 16000


def test_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_truncated_data_is_reported(wav_bytes: WavBytes) -> None:
    data = wav_bytes(
        frames=b"\x01\x00" * 10, data_size=40
    )  # declares 20 frames, holds 10  # a normal RIFF size
    with pytest.raises(WavError, match="header declares 20 frames, file holds 10"):
        read_wav(io.BytesIO(data))


def test_partial_trailing_frame_is_reported(wav_bytes: WavBytes) -> None:
    data = wav_bytes(frames=b"\x01\x00\x02\x00\x03", channels=2, data_size=8)
    with pytest.raises(WavError, match="5 bytes is not a whole number of 4-byte frames"):
        read_wav(io.BytesIO(data))


def test_unknown_length_streamed_wav_reads_to_end(wav_bytes: WavBytes) -> None:
    data = wav_bytes(frames=struct.pack("<3h", 1, 2, 3), data_size=0xFFFFFFFF)
    _, samples = read_wav(io.BytesIO(data))
    assert samples.ravel().tolist() == [1, 2, 3]


def test_write_rejects_float_format_and_float_samples() -> None:
    with pytest.raises(WavError, match=r"WAV output is 16-bit PCM.*got f32le"):
        write_wav(io.BytesIO(), np.zeros((1, 1), np.float32), AudioFormat(16000, 1, "f32le"))  # type: ignore[arg-type]  # str ok
    with pytest.raises(PcmError, match="s16le needs int16 samples, got float32"):
        write_wav(io.BytesIO(), np.zeros((1, 1), np.float32), AudioFormat(16000, 1))
    with pytest.raises(WavError, match="fmt must be an AudioFormat"):
        write_wav(io.BytesIO(), np.zeros((1, 1), np.int16), (16000, 1))  # type: ignore[arg-type]  # on purpose


def test_write_rejects_channel_mismatch() -> None:
    with pytest.raises(PcmError, match="expected 2"):
        write_wav(io.BytesIO(), np.zeros((4, 1), np.int16), AudioFormat(16000, 2))


class _Pipe(io.RawIOBase):
    name = "<pipe>"

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def test_stream_writer_needs_seekable_target() -> None:
    with pytest.raises(WavError, match="<pipe>: WAV output needs a seekable file"):
        WavStreamWriter(_Pipe(), AudioFormat(16000, 1))  # type: ignore[arg-type]  # raw pipe


def test_stream_writer_header_is_valid_after_each_write(rng: np.random.Generator) -> None:
    buffer = io.BytesIO()
    fmt = AudioFormat(24000, 2)
    chunks = [rng.integers(-1000, 1000, size=(n, 2), dtype=np.int16) for n in (5, 0, 17, 1)]
    with WavStreamWriter(buffer, fmt) as writer:
        assert writer.fmt == fmt
        written = 0
        for chunk in chunks:
            writer.write(chunk)
            written += chunk.shape[0]
            assert writer.frames_written == written
            snapshot = io.BytesIO(buffer.getvalue())
            _, so_far = read_wav(snapshot)
            assert so_far.shape == (written, 2)
    assert writer.closed
    buffer.seek(0)
    _, back = read_wav(buffer)
    np.testing.assert_array_equal(back, np.concatenate(chunks))


def test_stream_writer_closes_on_error_and_keeps_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.wav"
    with pytest.raises(RuntimeError), WavStreamWriter(path, AudioFormat(16000, 1)) as writer:
        writer.write(np.ones((3, 1), np.int16))
        raise RuntimeError("stream died")
    _, back = read_wav(path)
    assert back.ravel().tolist() == [1, 1, 1]


def test_stream_writer_write_after_close_and_double_close(tmp_path: Path) -> None:
    writer = WavStreamWriter(tmp_path / "x.wav", AudioFormat(16000, 1))
    writer.close()
    writer.close()
    with pytest.raises(WavError, match=r"x\.wav: write to a closed WavStreamWriter"):
        writer.write(np.zeros((1, 1), np.int16))


def test_stream_writer_write_pcm_checks_whole_frames() -> None:
    with WavStreamWriter(io.BytesIO(), AudioFormat(16000, 2)) as writer:
        writer.write_pcm(b"\x00" * 8)
        with pytest.raises(WavError, match="6 bytes of PCM is not a whole number of 4-byte"):
            writer.write_pcm(b"\x00" * 6)
        assert writer.frames_written == 2


def test_iter_wav_chunks_yields_fixed_chunks_and_short_last(tmp_path: Path) -> None:
    samples = np.arange(2 * 10, dtype=np.int16).reshape(10, 2)
    path = tmp_path / "in.wav"
    write_wav(path, samples, AudioFormat(16000, 2))
    fmt, chunks = iter_wav_chunks(path, 4)
    assert fmt == AudioFormat(16000, 2)
    got = list(chunks)
    assert [c.shape for c in got] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate(got), samples)


def test_iter_wav_chunks_24bit_stream() -> None:
    frames = b"".join(struct.pack("<i", v << 8)[:3] for v in range(-3, 4))
    _, chunks = iter_wav_chunks(io.BytesIO(stdlib_wav(frames, channels=1, width=3)), 3)
    assert [c.ravel().tolist() for c in chunks] == [[-3, -2, -1], [0, 1, 2], [3]]


def test_iter_wav_chunks_checks_header_eagerly(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(b"nope")
    with pytest.raises(WavError, match=r"bad\.wav"):
        iter_wav_chunks(path, 10)


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_iter_wav_chunks_rejects_bad_chunk_size(size: object) -> None:
    with pytest.raises(WavError, match="frames_per_chunk must be"):
        iter_wav_chunks(io.BytesIO(), size)  # type: ignore[arg-type]  # on purpose


def test_iter_wav_chunks_reports_truncation_at_the_end(wav_bytes: WavBytes) -> None:
    data = wav_bytes(frames=b"\x01\x00" * 5, data_size=20)
    _, chunks = iter_wav_chunks(io.BytesIO(data), 2)
    assert next(chunks).shape == (2, 1)
    assert next(chunks).shape == (2, 1)
    assert next(chunks).shape == (1, 1)
    with pytest.raises(WavError, match="header declares 10 frames, file holds 5"):
        next(chunks)


def test_iter_wav_chunks_closes_file_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    write_wav(path, np.zeros((10, 1), np.int16), AudioFormat(16000, 1))
    _, chunks = iter_wav_chunks(path, 3)
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]  # it is a generator
    # Closing early releases the file: it can be replaced right away.
    path.unlink()
    assert not path.exists()


def _extensible_pcm_wav(frames: bytes, *, channels: int, bits: int) -> bytes:
    rate = 16000
    block = channels * bits // 8
    pcm_guid = bytes.fromhex("0100000000001000800000aa00389b71")
    fmt_chunk = struct.pack(
        "<HHLLHHHHL", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0
    )
    fmt_chunk += pcm_guid
    body = b"WAVE" + b"fmt " + struct.pack("<L", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<L", len(frames)) + frames
    return b"RIFF" + struct.pack("<L", 4 + len(body)) + body


def test_wave_format_extensible_pcm_depends_on_the_stdlib() -> None:
    data = _extensible_pcm_wav(struct.pack("<2h", 5, -5), channels=2, bits=16)
    if sys.version_info >= (3, 12):
        # Python 3.12 taught `wave` to read WAVE_FORMAT_EXTENSIBLE integer PCM.
        fmt, samples = read_wav(io.BytesIO(data))
        assert fmt == AudioFormat(16000, 2)
        assert samples.tolist() == [[5, -5]]
    else:
        with pytest.raises(WavError, match=r"format 65534 \(WAVE_FORMAT_EXTENSIBLE\)"):
            read_wav(io.BytesIO(data))


class _Broken(io.BytesIO):
    def seekable(self) -> bool:
        raise ValueError("I/O operation on closed file")


def test_stream_writer_treats_unanswerable_seekable_as_not_seekable() -> None:
    with pytest.raises(WavError, match="needs a seekable file"):
        WavStreamWriter(_Broken(), AudioFormat(16000, 1))
