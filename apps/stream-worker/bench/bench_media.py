"""Benchmark: a 10-minute 720p30 file (H.264 + stereo 48 kHz AAC) dubbed through sts-service.

Measured side by side in one run (the machine is shared and noisy):

1. a plain PyAV remux of the file (every packet copied, nothing decoded): the floor;
2. stream-worker on the same file through sts-service (echo), file output (mp4): wall and
   CPU time, speed (x real time) and its cost over the remux;
3. stream-worker live: ``--realtime`` on a 30 s clip of the same kind, written as MPEG-TS:
   the worker process's CPU time as a share of one core;
4. crash safety: the worker SIGKILLed ``t`` seconds into a run (the 10-minute file, and
   ``--realtime`` on the clip), for each container: the seconds of video a player gets from
   what it left on disk.

``--sigkill-only`` runs part 4 alone.

The media is generated once with PyAV and kept outside git, in
``$XDG_CACHE_HOME/stream-worker-bench`` (``~/.cache/...``); delete it to regenerate.
Run: `cd apps/stream-worker && make bench` (sts-service's venv must exist: `make install`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from bench_worker import run_worker, sts_in_tempdir, verdict
from media_support import playable_seconds  # tests/ is put on sys.path by bench_worker

LONG_S = 600
CLIP_S = 30
REPEAT_S = 10
WIDTH, HEIGHT, FPS, RATE = 1280, 720, 30, 48000
GOAL_SPEED = 50.0  # x real time
GOAL_COST_OVER_REMUX = 2.0  # worker wall / remux wall
GOAL_LIVE_CORE_SHARE = 0.10


def cache_dir() -> Path:
    """Where generated media is kept between runs (outside the repository)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "stream-worker-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def generate(path: Path, seconds: int) -> Path:
    """A 720p30 test pattern with speech-like stereo 48 kHz audio (once; cached).

    Encoding 18000 720p frames would take many minutes on a shared machine, so a
    ``CLIP_S``-long clip (closed GOPs, no B-frames) is encoded once and its video packets are
    repeated with shifted timestamps; the audio is encoded in full.
    """
    if path.exists():
        return path
    partial = path.with_suffix(".partial.mp4")
    out: Any = av.open(str(partial), "w")
    video = out.add_stream(
        "libx264", rate=FPS, options={"preset": "ultrafast", "g": "60", "bf": "0"}
    )
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    audio = out.add_stream("aac", rate=RATE, layout="stereo")
    base = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    base[..., 0] = np.arange(WIDTH, dtype=np.uint16)[None, :] % 256
    base[..., 1] = (np.arange(HEIGHT, dtype=np.uint16)[:, None] * 2) % 256
    clip: list[Any] = []
    for i in range(min(seconds, REPEAT_S) * FPS):
        frame = av.VideoFrame.from_ndarray(np.roll(base, 8 * i, axis=1), "rgb24")
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        clip.extend(video.encode(frame))
    clip.extend(video.encode(None))
    t = np.arange(RATE) / RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    second = (voice * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2 * 6000).astype(np.int16)
    stereo = np.repeat(second[:, None], 2, axis=1).reshape(1, -1)
    for s in range(seconds):
        if s % REPEAT_S == 0:  # the next copy of the clip's video
            for packet in clip:
                shift = round((s // REPEAT_S) * REPEAT_S / packet.time_base)
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + shift, packet.dts + shift
                copy.duration, copy.time_base = packet.duration, packet.time_base
                copy.is_keyframe = packet.is_keyframe
                copy.stream = video
                out.mux(copy)
        samples = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        samples.sample_rate, samples.pts, samples.time_base = RATE, s * RATE, Fraction(1, RATE)
        out.mux(audio.encode(samples))
    out.mux(audio.encode(None))
    out.close()
    partial.rename(path)
    return path


def remux(src: Path, dst: Path) -> tuple[float, float]:
    """Copy every packet into a new mp4 with PyAV: (wall s, cpu s)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream_index]
            out.mux(packet)
    return time.perf_counter() - wall0, time.process_time() - cpu0


KILL_CONTAINERS = ("mp4", "mkv", "ts")
KILL_AT_S = (5.0, 15.0)
LIVE_DELAY_MS = 2500


def killed_at(src: Path, dst: Path, url: str, after_s: float, *extra: str) -> float:
    """Run the worker, SIGKILL it ``after_s`` seconds in: seconds playable in ``dst``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o", str(dst), "--sts-url", url,
         "--progress", "never", "--log-level", "WARNING", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(after_s)
    proc.kill()
    proc.wait(timeout=30)
    return playable_seconds(dst)


def sigkill_lines(long_src: Path, clip: Path, tmp: Path, url: str) -> list[str]:
    """Seconds playable after SIGKILL at t, for each container, file and live runs."""
    live = ["--realtime", "--segmenter", "fixed", "--segment-ms", "2000"]
    live += ["--output-delay-ms", str(LIVE_DELAY_MS)]
    lines = [
        "crash safety: seconds of video playable after SIGKILL t s into the run "
        f"(file: the {LONG_S} s file at full speed; live: --realtime {CLIP_S} s clip, "
        f"2 s segments, {LIVE_DELAY_MS / 1000:g} s output delay; start-up ~1-2 s included in t)"
    ]
    for t in KILL_AT_S:
        cells = []
        for ext in KILL_CONTAINERS:
            file_s = killed_at(long_src, tmp / f"killed-{t:g}.{ext}", url, t)
            live_s = killed_at(clip, tmp / f"killed-live-{t:g}.{ext}", url, t, *live)
            cells.append(f"{ext} file {file_s:7.1f} s / live {live_s:5.1f} s")
        lines.append(f"  t = {t:4.1f} s   " + "   ".join(cells))
    return lines


def main() -> None:
    """Generate (once), measure, report."""
    t0 = time.perf_counter()
    long_src = generate(cache_dir() / f"bench-720p30-{LONG_S}s.mp4", LONG_S)
    clip = generate(cache_dir() / f"bench-720p30-{CLIP_S}s.mp4", CLIP_S)
    made_s = time.perf_counter() - t0
    if "--sigkill-only" in sys.argv[1:]:
        with sts_in_tempdir("sw-media-bench-") as (tmp, url):
            sys.stdout.write("\n".join(sigkill_lines(long_src, clip, tmp, url)) + "\n")
        return
    with sts_in_tempdir("sw-media-bench-") as (tmp, url):
        remux_wall, remux_cpu = remux(long_src, tmp / "remux.mp4")
        summary, wall, cpu = run_worker(long_src, tmp / "dubbed.mp4", url)
        live, live_wall, live_cpu = run_worker(
            clip, tmp / "live.ts", url, "--realtime", "--segmenter", "fixed", "--segment-ms", "2000"
        )
        killed = sigkill_lines(long_src, clip, tmp, url)
    speed = LONG_S / wall
    cost = wall / remux_wall
    share = live_cpu / live_wall
    video_packets = summary["output"]["video_packets"]
    lines = [
        f"media: {LONG_S} s and {CLIP_S} s of {WIDTH}x{HEIGHT}p{FPS} H.264 + stereo {RATE} Hz AAC "
        f"({'generated' if made_s > 1 else 'cached'} in {cache_dir()}, {made_s:.1f} s)",
        f"  remux (PyAV, packets copied)      wall {remux_wall:7.3f} s  cpu {remux_cpu:7.3f} s",
        f"  stream-worker -> mp4, echo         wall {wall:7.3f} s  cpu {cpu:7.3f} s  "
        f"(pipeline {summary['wall_s']:.3f} s; {summary['segments']['total']} segments, "
        f"{summary['segments']['fallback']} fallbacks, {video_packets} video packets)",
        f"  speed                              {speed:7.1f}x real time   "
        f"goal >= {GOAL_SPEED:.0f}x: {verdict(speed >= GOAL_SPEED)}",
        f"  worker wall / remux wall           {cost:7.1f}x             "
        f"goal < {GOAL_COST_OVER_REMUX:.0f}x: {verdict(cost < GOAL_COST_OVER_REMUX)}",
        f"  worker cpu / remux cpu             {cpu / max(remux_cpu, 1e-9):7.1f}x",
        f"live: --realtime {CLIP_S} s clip -> MPEG-TS, 2 s segments, delay "
        f"{live['output'].get('delay_s')} s, audio behind slot "
        f"{live['output'].get('audio_behind_s')} s",
        f"  worker cpu {live_cpu:.3f} s over {live_wall:.3f} s wall = {share:.1%} of one core   "
        f"goal < {GOAL_LIVE_CORE_SHARE:.0%}: {verdict(share < GOAL_LIVE_CORE_SHARE)}",
        *killed,
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
