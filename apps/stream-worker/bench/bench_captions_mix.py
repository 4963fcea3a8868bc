"""What captions and voice-over cost the worker: CPU per second of audio, no service.

1. Voice-over: `VoiceOver.mix` over 10 minutes of 16 kHz mono (the default service format)
   in 2.8 s segments (the default longest), every segment dubbed with speech in its middle.
2. Captions: `segment_cues` + `WebVttFile.add` (flushed per cue) for the same segments, to a
   file in a temporary folder.

The share of one core is what a live stream adds for each (CPU seconds / audio seconds).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat
from stream_worker.captions import WebVttFile, segment_cues
from stream_worker.outcome import DubResult
from stream_worker.reorder import Emitted
from stream_worker.voiceover import VoiceOver

FMT = AudioFormat(16000, 1)
MINUTES = 10
SEGMENT_S = 2.8


def _segments() -> list[Emitted]:
    frames = round(SEGMENT_S * FMT.sample_rate)
    rng = np.random.default_rng(1)
    t = np.arange(frames) / FMT.sample_rate
    music: npt.NDArray[np.int16] = (3000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)[:, None]
    out = []
    for seq in range(round(MINUTES * 60 / SEGMENT_S)):
        dub = np.zeros((frames, 1), dtype=np.int16)
        dub[frames // 5 : frames * 4 // 5, 0] = rng.integers(-8000, 8000, frames * 3 // 5)
        result = DubResult(audio=dub, reason=None, transcript="hello there", translation="hola")
        out.append(Emitted(seq, dub, result, 0.0, 0.0, music))
    return out


def main() -> None:
    """Print the cost of each, per second of audio."""
    segments = _segments()
    audio_s = len(segments) * SEGMENT_S
    mixer = VoiceOver(FMT)
    start = time.process_time()
    for emitted in segments:
        mixer.mix(emitted)
    mix_cpu = time.process_time() - start
    with tempfile.TemporaryDirectory() as folder:
        file = WebVttFile(str(Path(folder) / "bench.vtt"), "--captions")
        frames = round(SEGMENT_S * FMT.sample_rate)
        start = time.process_time()
        for emitted in segments:
            for cue in segment_cues(emitted, emitted.sequence_number * frames, FMT, 0.0).values():
                file.add(cue)
        caption_cpu = time.process_time() - start
        file.close()
    print(f"audio: {audio_s:.0f} s in {len(segments)} segments of {SEGMENT_S} s (16 kHz mono)")
    print(f"voice-over mix: {mix_cpu:.3f} s CPU = {100 * mix_cpu / audio_s:.3f}% of one core")
    print(f"captions: {caption_cpu:.3f} s CPU = {100 * caption_cpu / audio_s:.3f}% of one core")


if __name__ == "__main__":
    main()
