"""Audio building blocks shared by sts-service and stream-worker."""

from shared_audio.errors import (
    AudioError,
    AudioFormatError,
    MixError,
    PcmError,
    SegmentError,
    WavError,
)
from shared_audio.format import (
    SUPPORTED_CHANNELS,
    SUPPORTED_SAMPLE_RATES,
    AudioFormat,
    SampleEncoding,
)
from shared_audio.levels import (
    SILENCE_DBFS,
    is_silent,
    is_silent_dub,
    is_speech,
    mix_ducked,
    rms_dbfs,
    speech_steps,
)
from shared_audio.pcm import (
    INT16_FULL_SCALE,
    array_to_pcm,
    float32_to_int16,
    int16_to_float32,
    pcm_to_array,
)
from shared_audio.resample import resample
from shared_audio.segment import Segment, Segmenter, fit_to_length
from shared_audio.wav import (
    WAV_UNKNOWN_LENGTH_BYTES,
    WavStreamWriter,
    iter_wav_chunks,
    read_wav,
    write_wav,
)

__all__ = [
    "INT16_FULL_SCALE",
    "SILENCE_DBFS",
    "SUPPORTED_CHANNELS",
    "SUPPORTED_SAMPLE_RATES",
    "WAV_UNKNOWN_LENGTH_BYTES",
    "AudioError",
    "AudioFormat",
    "AudioFormatError",
    "MixError",
    "PcmError",
    "SampleEncoding",
    "Segment",
    "SegmentError",
    "Segmenter",
    "WavError",
    "WavStreamWriter",
    "array_to_pcm",
    "fit_to_length",
    "float32_to_int16",
    "int16_to_float32",
    "is_silent",
    "is_silent_dub",
    "is_speech",
    "iter_wav_chunks",
    "mix_ducked",
    "pcm_to_array",
    "read_wav",
    "resample",
    "rms_dbfs",
    "speech_steps",
    "write_wav",
]
