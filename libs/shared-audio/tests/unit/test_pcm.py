from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import (
    AudioFormat,
    PcmError,
    SampleEncoding,
    array_to_pcm,
    float32_to_int16,
    int16_to_float32,
    pcm_to_array,
)

MONO = AudioFormat(16000, 1)
STEREO = AudioFormat(48000, 2)
F32_STEREO = AudioFormat(48000, 2, SampleEncoding.F32LE)


def test_pcm_to_array_decodes_little_endian_interleaved_frames() -> None:
    data = struct.pack("<4h", 1, -1, 32767, -32768)
    samples = pcm_to_array(data, STEREO)
    assert samples.dtype == np.int16
    assert samples.shape == (2, 2)
    assert samples.tolist() == [[1, -1], [32767, -32768]]


def test_pcm_to_array_float32() -> None:
    data = struct.pack("<4f", 0.5, -0.25, 1.0, -1.0)
    samples = pcm_to_array(data, F32_STEREO)
    assert samples.dtype == np.float32
    assert samples.tolist() == [[0.5, -0.25], [1.0, -1.0]]


def test_pcm_to_array_empty_and_one_frame() -> None:
    assert pcm_to_array(b"", STEREO).shape == (0, 2)
    assert pcm_to_array(b"\x02\x00", MONO).tolist() == [[2]]


def test_pcm_to_array_copy_is_writable_and_independent() -> None:
    data = bytearray(struct.pack("<2h", 5, 6))
    samples = pcm_to_array(data, MONO)
    samples[0, 0] = 99
    assert data == bytearray(struct.pack("<2h", 5, 6))
    assert not np.shares_memory(samples, np.frombuffer(data, dtype=np.uint8))


def test_pcm_to_array_without_copy_is_a_view() -> None:
    data = bytearray(struct.pack("<2h", 5, 6))
    view = pcm_to_array(data, MONO, copy=False)
    assert np.shares_memory(view, np.frombuffer(data, dtype=np.uint8))
    readonly = pcm_to_array(bytes(data), MONO, copy=False)
    assert not readonly.flags.writeable


def test_pcm_to_array_accepts_memoryview() -> None:
    data = memoryview(struct.pack("<2h", 7, 8))
    assert pcm_to_array(data, MONO).ravel().tolist() == [7, 8]


def test_odd_byte_count_names_byte_count() -> None:
    with pytest.raises(PcmError, match=r"3 bytes.*2-byte s16le samples \(1 stray bytes\)"):
        pcm_to_array(b"\x00\x00\x00", MONO)


def test_partial_frame_names_byte_count_and_frame_size() -> None:
    with pytest.raises(PcmError, match=r"6 bytes.*4-byte frames.*partial \(2 of 4 bytes\)"):
        pcm_to_array(b"\x00" * 6, STEREO)


def test_partial_float_sample() -> None:
    with pytest.raises(PcmError, match=r"10 bytes.*4-byte f32le samples"):
        pcm_to_array(b"\x00" * 10, F32_STEREO)


def test_array_to_pcm_round_trips_bytes() -> None:
    data = struct.pack("<6h", 1, 2, 3, -4, -5, 32767)
    assert array_to_pcm(pcm_to_array(data, STEREO), STEREO) == data
    fdata = struct.pack("<4f", 0.5, -0.5, 0.125, 1.0)
    assert array_to_pcm(pcm_to_array(fdata, F32_STEREO), F32_STEREO) == fdata


def test_array_to_pcm_accepts_1d_mono_and_non_contiguous() -> None:
    assert array_to_pcm(np.array([1, -1], dtype=np.int16), MONO) == struct.pack("<2h", 1, -1)
    wide = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    assert array_to_pcm(wide[:, ::2], STEREO) == struct.pack("<4h", 1, 3, 4, 6)


def test_array_to_pcm_big_endian_input_is_written_little_endian() -> None:
    samples = np.array([[1, 256]], dtype=">i2")
    assert array_to_pcm(samples, STEREO) == struct.pack("<2h", 1, 256)


def test_array_to_pcm_empty() -> None:
    assert array_to_pcm(np.zeros((0, 2), dtype=np.int16), STEREO) == b""


@pytest.mark.parametrize(
    ("samples", "fmt", "message"),
    [
        (
            np.zeros((2, 1), dtype=np.float32),
            MONO,
            "s16le needs int16 samples, got float32 .*float32_to_int16",
        ),
        (np.zeros((2, 1), dtype=np.int32), MONO, "s16le needs int16 samples, got int32$"),
        (np.zeros((2, 2), dtype=np.int16), F32_STEREO, "f32le needs float32 samples, got int16"),
        (np.zeros((2, 1), dtype=np.int16), STEREO, r"1 channels \(shape \(2, 1\)\), expected 2"),
        (np.zeros(4, dtype=np.int16), STEREO, r"got 1-D shape \(4,\)"),
        (np.zeros((2, 2, 1), dtype=np.int16), STEREO, "got 3-D"),
    ],
)
def test_array_to_pcm_rejects_mismatches(
    samples: npt.NDArray[Any], fmt: AudioFormat, message: str
) -> None:
    with pytest.raises(PcmError, match=message):
        array_to_pcm(samples, fmt)


def test_array_to_pcm_rejects_non_arrays() -> None:
    with pytest.raises(PcmError, match="must be a numpy array, got list"):
        array_to_pcm([1, 2], MONO)  # type: ignore[arg-type]  # wrong type on purpose


def test_int16_to_float32_scales_by_32768() -> None:
    samples = np.array([[-32768, 0], [16384, 32767]], dtype=np.int16)
    out = int16_to_float32(samples)
    assert out.dtype == np.float32
    assert out.shape == (2, 2)
    assert out.tolist() == [[-1.0, 0.0], [0.5, 32767 / 32768]]
    assert out.max() < 1.0


def test_int16_to_float32_rejects_other_dtypes() -> None:
    with pytest.raises(PcmError, match="expects int16 samples, got an array of float32"):
        int16_to_float32(np.zeros(2, dtype=np.float32))
    with pytest.raises(PcmError, match="got list"):
        int16_to_float32([1])  # type: ignore[arg-type]  # on purpose


def test_full_int16_range_round_trips_exactly() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16).reshape(-1, 2)
    back = float32_to_int16(int16_to_float32(every))
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, every)


def test_float32_to_int16_clips_and_rounds() -> None:
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, np.inf, -np.inf], dtype=np.float32)
    expected = [-32768, -32768, -16384, 0, 16384, 32767, 32767, 32767, -32768]
    assert float32_to_int16(x).tolist() == expected
    # Half-way values round to even; 0.4 / 0.6 of a step round to the nearest step.
    steps = np.array([0.5, 1.5, 2.5, 0.4, 0.6, -0.6], dtype=np.float64) / 32768
    assert float32_to_int16(steps).tolist() == [0, 2, 2, 0, 1, -1]


def test_float32_to_int16_keeps_shape_and_does_not_modify_input() -> None:
    x = np.array([[0.25, -0.25]], dtype=np.float32)
    out = float32_to_int16(x)
    assert out.shape == (1, 2)
    assert x.tolist() == [[0.25, -0.25]]


def test_float32_to_int16_rejects_nan_with_position() -> None:
    x = np.array([0.0, 0.1, np.nan], dtype=np.float32)
    with pytest.raises(PcmError, match=r"NaN.*flat index 2"):
        float32_to_int16(x)


def test_float32_to_int16_rejects_int_input() -> None:
    with pytest.raises(PcmError, match="expects float samples, got an array of int16"):
        float32_to_int16(np.zeros(2, dtype=np.int16))
