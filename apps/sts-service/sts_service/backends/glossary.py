"""Glossaries: names and terms a broadcaster needs right, one file per language pair.

A glossary is a UTF-8 TSV file named ``<source>-<target>.tsv`` (contract language tags, e.g.
``en-es.tsv``) in the folder `EngineOptions.glossary_dir`. Each line is one entry,
``source term<TAB>target term``; blank lines and lines starting with ``#`` are ignored. The
target term may equal the source term (a name kept as it is).

The ASR is biased towards the source terms (whisper's ``hotwords``), and the MT keeps them
intact and puts the target term in (`Glossary.split`). Terms match whole words, in any case,
with any run of white space between their words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shared_utils.languages import ISO639_3_TO_1, iso639_1

#: A glossary file's stem: two language codes (``en-es``, or Apertium's ``eng-spa``).
_FILE_STEM = re.compile(r"([A-Za-z]{2,3})-([A-Za-z]{2,3})")


class GlossaryError(ValueError):
    """A glossary file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Glossary:
    """The entries of one language pair, longest source term first (it wins an overlap).

    Example:
        >>> g = Glossary("en", "es", (("Golden State Warriors", "Golden State Warriors"),))
        >>> g.split("the golden  state warriors won")
        ['the ', 0, ' won']
    """

    source: str
    target: str
    entries: tuple[tuple[str, str], ...]
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.entries, key=lambda entry: -len(entry[0])))
        object.__setattr__(self, "entries", ordered)
        alternatives = "|".join(
            r"\s+".join(re.escape(word) for word in term.split()) for term, _ in ordered
        )
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        object.__setattr__(self, "_pattern", pattern if ordered else None)
        index = {_folded(term): number for number, (term, _) in enumerate(ordered)}
        object.__setattr__(self, "_index", index)

    def hotwords(self) -> str:
        """The source terms, comma-separated, to bias the ASR towards them."""
        return ", ".join(term for term, _ in self.entries)

    def split(self, text: str) -> list[str | int]:
        """`text` cut into plain pieces and the indexes (into `entries`) of the terms in it."""
        if self._pattern is None:
            return [text] if text else []
        parts: list[str | int] = []
        position = 0
        for match in self._pattern.finditer(text):
            index = self._index.get(_folded(match[0]))
            if index is None:  # a case-insensitive match that folds otherwise (dotless i for "I")
                continue
            parts.append(text[position : match.start()])
            parts.append(index)
            position = match.end()
        parts.append(text[position:])
        return [part for part in parts if part != ""]

    def target_term(self, index: int) -> str:
        """The target term of entry `index`."""
        return self.entries[index][1]


def _folded(term: str) -> str:
    return " ".join(term.casefold().split())


def _language(code: str, path: Path) -> str:
    tag = iso639_1(code)
    if len(tag) != 2 or tag not in {*ISO639_3_TO_1.values()}:
        raise GlossaryError(f"{path}: unknown language {code!r} in the file name")
    return tag


def parse_glossary(path: Path) -> Glossary:
    """Read one glossary file.

    Raises:
        GlossaryError: naming the file and the line, for a file name that is not
            ``<source>-<target>.tsv``, a line that is not UTF-8 or not two tab-separated
            non-empty terms, or a source term given twice.
    """
    match = _FILE_STEM.fullmatch(path.stem)
    if match is None or path.suffix != ".tsv":
        raise GlossaryError(
            f"{path}: a glossary file is named <source>-<target>.tsv, e.g. en-es.tsv"
        )
    source, target = _language(match[1], path), _language(match[2], path)
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path} line {number}"
        try:
            line = raw.decode("utf-8").strip("\r\n")
        except UnicodeDecodeError:
            raise GlossaryError(f"{where}: not UTF-8") from None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise GlossaryError(f"{where}: expected 'source term<TAB>target term', got {line!r}")
        term, translation = (" ".join(value.split()) for value in fields)
        key = _folded(term)
        if key in seen:
            raise GlossaryError(f"{where}: {term!r} is already on line {seen[key]}")
        seen[key] = number
        entries.append((term, translation))
    return Glossary(source, target, tuple(entries))


def load_glossaries(folder: str) -> dict[tuple[str, str], Glossary]:
    """Every glossary in `folder` (the ``*.tsv`` files), by (source, target); none for "".

    Raises:
        GlossaryError: for a folder that does not exist, a bad file (naming file and line),
            or two files for one language pair.
    """
    if not folder:
        return {}
    directory = Path(folder)
    if not directory.is_dir():
        raise GlossaryError(f"{directory}: glossary folder not found")
    found: dict[tuple[str, str], Glossary] = {}
    for path in sorted(directory.glob("*.tsv")):
        glossary = parse_glossary(path)
        key = (glossary.source, glossary.target)
        if key in found:
            raise GlossaryError(f"{path}: a second glossary for {key[0]}-{key[1]}")
        found[key] = glossary
    return found


def glossary_for(
    glossaries: dict[tuple[str, str], Glossary], source: str, target: str
) -> Glossary | None:
    """The glossary of `source` -> `target` (region subtags ignored: ``pt-BR`` is ``pt``)."""
    return glossaries.get((iso639_1(source), iso639_1(target)))


def describe(glossaries: dict[tuple[str, str], Glossary]) -> str:
    """The glossaries in a few words, for a health detail.

    Example:
        >>> describe({("en", "es"): Glossary("en", "es", (("BlackRock", "BlackRock"),))})
        'en-es (1 term)'
    """
    return ", ".join(
        f"{a}-{b} ({len(g.entries)} term{'' if len(g.entries) == 1 else 's'})"
        for (a, b), g in sorted(glossaries.items())
    )
