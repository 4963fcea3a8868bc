"""Voice-over: the original audio kept under the dub, ducked while the dub speaks.

`--mix replace` (the default) writes the dub alone. `--mix voice-over` writes
``original * gain + dub``, where the gain is ``--duck-db`` while the dub speaks and 0 dB
elsewhere, so music and ambience stay and the translation is on top.

- **Where the dub speaks**: each 10 ms step of the dub above -45 dBFS (the level
  `stream_worker.latency` locates speech with), widened by `HOLD_MS` after it (gaps between
  words do not pump the music up and down) and by `RAMP_MS` before it (the ramp down is over
  when the first syllable starts: look-ahead inside the segment).
- **Ramps**: the gain moves linearly, at most the whole duck depth per `RAMP_MS`, sample by
  sample, and carries over from one segment to the next, so there is never a step in the
  gain (no click), also where a dubbed segment meets a fallback.
- Segments that are not dubbed (fallback, no speech) are the original, with the gain
  ramping back to 0 dB.

Mixing happens in the format the pipeline writes (the service's: 16 kHz mono by default),
like everything the pipeline writes. `shared_audio.mix_ducked` applies one constant gain;
this needs a gain that moves within a segment, so the ducking is computed here and the sum
is clipped the same way.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, speech_steps
from stream_worker.latency import STEP_MS
from stream_worker.reorder import Emitted

#: Broadcasters' voice-over practice keeps the original "just audible" under the
#: translation: 12-18 dB below. -15 dB is the middle: music and ambience stay present and
#: a voice in the original stays well below the dub's, so the two do not compete.
DEFAULT_DUCK_DB = -15.0
#: The deepest duck accepted: below it the original is inaudible under any dub (use replace).
MIN_DUCK_DB = -60.0
#: Length of a full ramp between 0 dB and the duck (down and up): long enough to be
#: smooth (no click, no audible pumping), short enough that the duck is in place when the
#: dub starts (it is started this much before).
RAMP_MS = 100
#: The duck stays this long after the dub's last voiced step, bridging pauses between words.
HOLD_MS = 300


class VoiceOver:
    """Mixes each written segment: the dub over the ducked original, with continuous gain.

    Args:
        fmt: The format the pipeline writes.
        duck_db: Gain of the original while the dub speaks (negative, dB).
    """

    def __init__(self, fmt: AudioFormat, duck_db: float = DEFAULT_DUCK_DB) -> None:
        if not (MIN_DUCK_DB <= duck_db <= 0.0):
            raise ValueError(f"duck_db must be between {MIN_DUCK_DB} and 0 dB, got {duck_db!r}")
        self._fmt = fmt
        self._low = float(10.0 ** (duck_db / 20.0))
        self._step = max(1, fmt.frames_for_ms(STEP_MS))
        # Gain change per sample: the whole depth over RAMP_MS.
        self._slope = (1.0 - self._low) / max(1, fmt.frames_for_ms(RAMP_MS))
        self._gain = 1.0  # carried from one segment to the next

    def _targets(self, dub: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
        """Per sample: the gain the original should have (duck where the dub speaks)."""
        frames = dub.shape[0]
        step = self._step
        steps = -(-frames // step)
        voiced = speech_steps(dub, step)
        ducked = np.zeros(steps, dtype=bool)
        before = -(-self._fmt.frames_for_ms(RAMP_MS) // step)
        after = -(-self._fmt.frames_for_ms(HOLD_MS) // step)
        for at in np.flatnonzero(voiced):
            ducked[max(0, at - before) : at + after + 1] = True
        per_step = np.where(ducked, self._low, 1.0)
        return np.repeat(per_step, step)[:frames]

    def _ramp(self, targets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The gain per sample: `targets` followed at most `_slope` per sample.

        Piecewise: between changes of the target the gain moves linearly towards it and
        stays there once reached, so this loops over the runs of the target, not the samples.
        """
        gains = np.empty_like(targets)
        gain = self._gain
        start = 0
        frames = targets.shape[0]
        changes = np.flatnonzero(np.diff(targets)) + 1
        for end in (*changes.tolist(), frames):
            target = float(targets[start])
            n = np.arange(1, end - start + 1, dtype=np.float64)
            if target < gain:
                run = np.maximum(gain - self._slope * n, target)
            else:
                run = np.minimum(gain + self._slope * n, target)
            gains[start:end] = run
            gain = float(run[-1])
            start = end
        self._gain = gain
        return gains

    def mix(self, emitted: Emitted) -> npt.NDArray[np.int16]:
        """What to write for ``emitted``: the dub over the ducked original, or the original."""
        original = emitted.original if emitted.original is not None else emitted.samples
        if original.shape[0] == 0 or (not emitted.dubbed and self._gain == 1.0):
            return original  # nothing to mix, nothing to ramp
        if emitted.dubbed and emitted.original is not None:
            dub = emitted.samples
            gains = self._ramp(self._targets(dub))
        else:
            dub = None
            gains = self._ramp(np.ones(original.shape[0]))
        mixed = original.astype(np.float64) * gains[:, None]
        if dub is not None:
            mixed += dub
        np.rint(mixed, out=mixed)
        np.clip(mixed, -32768, 32767, out=mixed)
        return mixed.astype(np.int16)
