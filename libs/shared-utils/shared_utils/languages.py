"""The one ISO 639 table: BCP 47 language tags (the contract's form) and three-letter codes.

Containers (MP4, Matroska, MPEG-TS) store ISO 639-2 codes in their bibliographic form
(``fre``, ``ger``, as FFmpeg writes them); Apertium names its pairs with ISO 639-3 codes, the
same as 639-2's terminology form (``fra``, ``deu``), or with two-letter ones. Both forms come
from this table, so the two uses cannot disagree on a language again.
"""

from __future__ import annotations

#: ISO 639-1 -> ISO 639-2/T (= ISO 639-3 for these), for the languages a dubbing service is
#: likely to meet.
ISO639_1_TO_3: dict[str, str] = {
    "af": "afr", "an": "arg", "ar": "ara", "be": "bel", "bg": "bul", "bn": "ben", "br": "bre",
    "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
    "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra",
    "ga": "gle", "gl": "glg", "gu": "guj", "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun",
    "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn", "ka": "kat", "kk": "kaz",
    "km": "khm", "kn": "kan", "ko": "kor", "lt": "lit", "lv": "lav", "mk": "mkd", "ml": "mal",
    "mn": "mon", "mr": "mar", "ms": "msa", "mt": "mlt", "my": "mya", "nb": "nob", "ne": "nep",
    "nl": "nld", "nn": "nno", "no": "nor", "oc": "oci", "pa": "pan", "pl": "pol", "pt": "por",
    "ro": "ron", "ru": "rus", "sc": "srd", "sk": "slk", "sl": "slv", "sq": "sqi", "sr": "srp",
    "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur",
    "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "yo": "yor", "zh": "zho", "zu": "zul",
}  # fmt: skip

#: Where ISO 639-2's bibliographic code differs from the terminology code above.
BIBLIOGRAPHIC: dict[str, str] = {
    "bo": "tib", "cs": "cze", "cy": "wel", "de": "ger", "el": "gre", "eu": "baq", "fa": "per",
    "fr": "fre", "hy": "arm", "is": "ice", "ka": "geo", "mk": "mac", "ms": "may", "my": "bur",
    "nl": "dut", "ro": "rum", "sk": "slo", "sq": "alb", "zh": "chi",
}  # fmt: skip

#: ISO 639-3 (and 639-2/B) -> ISO 639-1, for the codes above.
ISO639_3_TO_1: dict[str, str] = {
    **{code: tag for tag, code in ISO639_1_TO_3.items()},
    **{code: tag for tag, code in BIBLIOGRAPHIC.items()},
}

UNDETERMINED = "und"


def primary(tag: str) -> str:
    """The primary language subtag of a BCP 47 tag, lower-cased (``"pt-BR"`` -> ``"pt"``)."""
    return tag.split("-", 1)[0].split("_", 1)[0].lower()


def iso639_2(tag: str, *, bibliographic: bool = True) -> str:
    """The three-letter code of a BCP 47 tag; ``und`` for a language not in the table.

    Args:
        tag: A BCP 47 tag (``pt-BR``) or a three-letter code, which passes through.
        bibliographic: The 639-2/B form containers use (``fre``), else 639-2/T (``fra``).

    Example:
        >>> iso639_2("fr"), iso639_2("fr", bibliographic=False), iso639_2("deu"), iso639_2("xx")
        ('fre', 'fra', 'deu', 'und')
    """
    code = primary(tag)
    if len(code) == 3 and code.isalpha():
        return code
    if bibliographic and code in BIBLIOGRAPHIC:
        return BIBLIOGRAPHIC[code]
    return ISO639_1_TO_3.get(code, UNDETERMINED)


def iso639_1(code: str) -> str:
    """The two-letter tag of a language code, or the code itself when it has none.

    Example:
        >>> iso639_1("spa"), iso639_1("fre"), iso639_1("es"), iso639_1("hbs")
        ('es', 'fr', 'es', 'hbs')
    """
    base = primary(code)
    return ISO639_3_TO_1.get(base, base)
