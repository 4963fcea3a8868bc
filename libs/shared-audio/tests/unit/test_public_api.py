from __future__ import annotations

import shared_audio

# The names helpers D and E code against (SHARED_API.md). A rename breaks this test first.
CONTRACT_NAMES = {
    "AudioError",
    "AudioFormatError",
    "PcmError",
    "WavError",
    "SegmentError",
    "SampleEncoding",
    "AudioFormat",
    "SUPPORTED_SAMPLE_RATES",
    "SUPPORTED_CHANNELS",
    "pcm_to_array",
    "array_to_pcm",
    "int16_to_float32",
    "float32_to_int16",
    "read_wav",
    "write_wav",
    "WavStreamWriter",
    "iter_wav_chunks",
    "Segment",
    "Segmenter",
    "fit_to_length",
    "resample",
    "rms_dbfs",
    "is_speech",
    "is_silent",
    "is_silent_dub",
    "mix_ducked",
}


def test_all_contract_names_are_exported() -> None:
    assert CONTRACT_NAMES <= set(shared_audio.__all__)


def test_all_names_exist() -> None:
    for name in shared_audio.__all__:
        assert hasattr(shared_audio, name), name


def test_every_error_is_an_audio_error_and_a_value_error() -> None:
    for name in ("AudioFormatError", "PcmError", "WavError", "SegmentError", "MixError"):
        cls = getattr(shared_audio, name)
        assert issubclass(cls, shared_audio.AudioError)
        assert issubclass(cls, ValueError)


def test_public_callables_have_docstrings() -> None:
    for name in shared_audio.__all__:
        obj = getattr(shared_audio, name)
        if callable(obj):
            assert obj.__doc__, name
