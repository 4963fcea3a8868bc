"""Glossaries: the file format, its start-up errors, and how ASR and MT use the terms (fakes)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_audio import AudioFormat
from shared_utils.settings import SettingsError, load_settings
from sts_service.backends.apertium import (
    ApertiumTranslator,
    from_stream,
    keep_case_after_terms,
    placeholder,
    to_stream,
)
from sts_service.backends.base import AudioClip, EngineOptions, Fragment
from sts_service.backends.glossary import (
    Glossary,
    GlossaryError,
    describe,
    glossary_for,
    load_glossaries,
    parse_glossary,
)
from sts_service.backends.whisper import WhisperASR
from sts_service.config import StsSettings
from sts_service.main import main

EN_ES = (
    "# names the engines get wrong\n"
    "Golden State Warriors\tGolden State Warriors\r\n"
    "\n"
    "Siobhan Nguyen\tSiobhan Nguyen\n"
    "White House\tCasa Blanca\n"
)


@pytest.fixture
def glossary_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "glossaries"
    folder.mkdir()
    (folder / "en-es.tsv").write_text(EN_ES, encoding="utf-8", newline="")
    (folder / "README.txt").write_text("not a glossary: only *.tsv files are read\n")
    return folder


def test_a_glossary_file_is_read_with_its_comments_blank_lines_and_crlf(
    glossary_dir: Path,
) -> None:
    glossaries = load_glossaries(str(glossary_dir))
    assert list(glossaries) == [("en", "es")]
    glossary = glossaries[("en", "es")]
    assert dict(glossary.entries) == {
        "Golden State Warriors": "Golden State Warriors",
        "Siobhan Nguyen": "Siobhan Nguyen",
        "White House": "Casa Blanca",
    }
    assert glossary.hotwords() == "Golden State Warriors, Siobhan Nguyen, White House"
    assert glossary_for(glossaries, "en-US", "es-419") is glossary
    assert glossary_for(glossaries, "es", "en") is None
    assert describe(glossaries) == "en-es (3 terms)"
    assert load_glossaries("") == {}


def test_terms_match_whole_words_in_any_case_longest_first() -> None:
    glossary = Glossary("en", "es", (("House", "Cámara"), ("White House", "Casa Blanca")))
    parts = glossary.split("the white\n house and the House, not Houses")
    assert parts == ["the ", 0, " and the ", 1, ", not Houses"]
    assert [glossary.target_term(p) for p in parts if isinstance(p, int)] == [
        "Casa Blanca",
        "Cámara",
    ]
    assert Glossary("en", "es", ()).split("anything") == ["anything"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("en-es.tsv", "ok\tbien\nno tab\n", r"en-es.tsv line 2: expected .*, got 'no tab'"),
        ("en-es.tsv", "a\tb\tc\n", r"en-es.tsv line 1: expected 'source term<TAB>target term'"),
        ("en-es.tsv", "# c\n\tx\n", r"en-es.tsv line 2: expected"),
        ("en-es.tsv", "term\t \n", r"en-es.tsv line 1: expected"),
        ("en-es.tsv", "BR\tBR\nbr\tBR\n", r"en-es.tsv line 2: 'br' is already on line 1"),
        ("en-es.tsv", b"ok\tbien\n\xff\tx\n", r"en-es.tsv line 2: not UTF-8"),
        ("english-es.tsv", "a\tb\n", r"english-es.tsv: a glossary file is named <source>-"),
        ("en-xx.tsv", "a\tb\n", r"en-xx.tsv: unknown language 'xx'"),
    ],
)
def test_a_bad_glossary_file_is_named_with_its_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(GlossaryError, match=message.replace("[", r"\[")):
        load_glossaries(str(tmp_path))


def test_two_glossaries_for_one_pair_and_a_missing_folder_are_errors(glossary_dir: Path) -> None:
    (glossary_dir / "eng-spa.tsv").write_text("a\tb\n")
    with pytest.raises(GlossaryError, match=r"eng-spa.tsv: a second glossary for en-es"):
        load_glossaries(str(glossary_dir))
    with pytest.raises(GlossaryError, match=r"absent: glossary folder not found"):
        load_glossaries(str(glossary_dir / "absent"))
    with pytest.raises(GlossaryError, match=r"x.txt: a glossary file is named"):
        parse_glossary(glossary_dir / "x.txt")


def test_a_bad_glossary_stops_the_service_at_start_up_naming_file_and_line(
    glossary_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (glossary_dir / "fr-es.tsv").write_text("Élysée\tElíseo\nMacron\n")
    monkeypatch.setenv("STS_GLOSSARY_DIR", str(glossary_dir))
    with pytest.raises(SettingsError, match=r"STS_GLOSSARY_DIR: .*fr-es.tsv line 2: expected"):
        load_settings(StsSettings)
    assert main([]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "fr-es.tsv line 2" in error
    (glossary_dir / "fr-es.tsv").unlink()
    assert load_settings(StsSettings).glossary_dir == str(glossary_dir)


# --- the ASR: source terms as whisper's hotwords ------------------------------------------


def test_whisper_gets_the_pair_s_source_terms_as_hotwords_beside_the_previous_text(
    glossary_dir: Path, fake_whisper_model: Callable[[str], Any]
) -> None:
    model = fake_whisper_model("said Siobhan Nguyen")
    seen: list[dict[str, Any]] = model.calls
    asr = WhisperASR(EngineOptions(glossary_dir=str(glossary_dir)))
    asr.glossaries = load_glossaries(str(glossary_dir))  # what load() reads
    asr.model = model
    asr.model_source = "fake"
    clip = AudioClip(np.zeros((1600, 1), np.int16), AudioFormat(16000, 1))
    with_context = Fragment("f", "s", 1, "en", "es", previous_text="Good evening")
    assert asr.transcribe_sync(clip, with_context) == "said Siobhan Nguyen"
    asr.transcribe_sync(clip, Fragment("f", "s", 2, "en", "fr"))  # no en-fr glossary
    assert seen[0]["hotwords"] == "Golden State Warriors, Siobhan Nguyen, White House"
    assert seen[0]["initial_prompt"] == "Good evening"
    assert seen[1]["hotwords"] is None
    assert "glossaries: en-es (3 terms)" in (asr.health().detail or "")


# --- the MT: terms kept intact through Apertium, target term put in ------------------------

STAGE = textwrap.dedent(
    """\
    import os, sys
    buffer = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\\0" in buffer:
            item, buffer = buffer.split(b"\\0", 1)
            os.write(1, b"*" + item.upper() + b"\\0")
    """
)


@pytest.fixture
def modes_dir(tmp_path: Path) -> Path:
    """Stand-in pairs that upper-case their input, as Apertium would a word it does not know."""
    stage = tmp_path / "stage.py"
    stage.write_text(f"#!{sys.executable}\n{STAGE}", encoding="utf-8")
    stage.chmod(0o755)
    modes = tmp_path / "modes"
    modes.mkdir()
    for pair in ("eng-spa", "spa-por"):
        (modes / f"{pair}.mode").write_text(f"'{stage}'\n")
    return modes


def test_the_placeholder_stream_round_trips_escapes_and_marks() -> None:
    assert placeholder(0) == "Zqxglsa" and placeholder(27) == "Zqxglsbb"
    stream = to_stream(["said  ", 0, " [sic] ", 27, "."])
    assert stream == r"said Zqxglsa \[sic\] Zqxglsbb."
    assert from_stream("dijo *ZQXGLSA *Smith \\[sic\\] #zqxglsbb.") == [
        "dijo ",
        0,
        " Smith [sic] ",
        27,
        ".",
    ]


def test_apertium_keeps_glossary_terms_and_puts_the_target_term_in(
    modes_dir: Path, glossary_dir: Path
) -> None:
    (glossary_dir / "en-pt.tsv").write_text("White House\tCasa Branca\n")
    options = EngineOptions(apertium_modes_dir=str(modes_dir), glossary_dir=str(glossary_dir))
    translator = ApertiumTranslator(options)
    translator.glossaries = load_glossaries(str(glossary_dir))  # what load() reads
    try:
        to_spanish = Fragment("f", "s", 0, "en", "es")
        said = translator.translate_sync("the white house: said Siobhan Nguyen.", to_spanish)
        # the stand-in upper-cases the text, never the terms it did not see
        assert said == "THE Casa Blanca: SAID Siobhan Nguyen."
        # through a pivot the placeholder survives both pairs; the pair's own glossary wins
        pivot = Fragment("f", "s", 0, "en", "pt-BR")
        assert translator.translate_sync("The White House", pivot) == "THE Casa Branca"
        # a direction without a glossary is translated as it always was
        (modes_dir / "spa-eng.mode").write_text((modes_dir / "eng-spa.mode").read_text())
        back = Fragment("f", "s", 0, "es", "en")
        assert translator.translate_sync("white house", back) == "WHITE HOUSE"
        assert "glossaries: en-es (3 terms), en-pt (1 term)" in (translator.health().detail or "")
    finally:
        translator.close()


def test_the_word_after_a_term_keeps_the_source_s_lower_case() -> None:
    source: list[str | int] = [0, " said so, and ", 1, " Inc agreed"]
    output: list[str | int] = [0, " Dijo así, y ", 1, " Inc estuvo de acuerdo"]
    assert keep_case_after_terms(source, output) == [
        0,
        " dijo así, y ",
        1,
        " Inc estuvo de acuerdo",
    ]
    assert keep_case_after_terms([0], [0]) == [0]


def test_a_match_that_folds_to_no_term_is_left_as_text() -> None:
    # re's IGNORECASE lets "I" match the dotless i (U+0131), which casefold keeps apart
    glossary = Glossary("tr", "es", (("Izmir", "Esmirna"),))
    assert glossary.split("\u0131zmir ve Izmir") == ["\u0131zmir ve ", 0]
