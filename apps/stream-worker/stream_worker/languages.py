"""Language tags for container tracks: MP4, Matroska and MPEG-TS store ISO 639-2 codes.

The worker takes BCP 47 tags (``en``, ``pt-BR``), the contract's form; containers want three
letters (``eng``, ``por``); MP4 and MPEG-TS drop a two-letter tag silently. The table covers
the ISO 639-1 languages a dubbing service is likely to meet (bibliographic forms, as FFmpeg
writes them); a three-letter tag passes through; anything else becomes ``und`` (undetermined).
"""

from __future__ import annotations

ISO639_1_TO_2: dict[str, str] = {
    "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "cze", "cy": "wel", "da": "dan",
    "de": "ger", "el": "gre", "en": "eng", "es": "spa", "et": "est", "eu": "baq", "fa": "per",
    "fi": "fin", "fr": "fre", "ga": "gle", "gl": "glg", "gu": "guj", "he": "heb", "hi": "hin",
    "hr": "hrv", "hu": "hun", "hy": "arm", "id": "ind", "is": "ice", "it": "ita", "ja": "jpn",
    "ka": "geo", "kk": "kaz", "km": "khm", "kn": "kan", "ko": "kor", "lt": "lit", "lv": "lav",
    "mk": "mac", "ml": "mal", "mn": "mon", "mr": "mar", "ms": "may", "mt": "mlt", "my": "bur",
    "nb": "nob", "ne": "nep", "nl": "dut", "nn": "nno", "no": "nor", "pa": "pan", "pl": "pol",
    "pt": "por", "ro": "rum", "ru": "rus", "sk": "slo", "sl": "slv", "sq": "alb", "sr": "srp",
    "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur",
    "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "yo": "yor", "zh": "chi", "zu": "zul",
}  # fmt: skip

UNDETERMINED = "und"


def iso639_2(tag: str) -> str:
    """The ISO 639-2 code of a BCP 47 language tag (``"pt-BR"`` -> ``"por"``).

    Example:
        >>> iso639_2("es"), iso639_2("pt-BR"), iso639_2("deu"), iso639_2("xx")
        ('spa', 'por', 'deu', 'und')
    """
    primary = tag.split("-", 1)[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    return ISO639_1_TO_2.get(primary, UNDETERMINED)
