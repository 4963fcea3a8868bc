"""The one ISO 639 table: containers' bibliographic codes and Apertium's terminology codes."""

from __future__ import annotations

import pytest

from shared_utils.languages import BIBLIOGRAPHIC, ISO639_1_TO_3, iso639_1, iso639_2


@pytest.mark.parametrize(
    ("tag", "container", "apertium"),
    [("fr", "fre", "fra"), ("de", "ger", "deu"), ("es-419", "spa", "spa"), ("pt-BR", "por", "por")],
)
def test_both_forms_come_from_one_table(tag: str, container: str, apertium: str) -> None:
    assert iso639_2(tag) == container
    assert iso639_2(tag, bibliographic=False) == apertium
    assert iso639_1(container) == iso639_1(apertium) == tag.split("-")[0]


def test_every_bibliographic_code_is_of_a_known_language_or_tibetan() -> None:
    assert set(BIBLIOGRAPHIC) - set(ISO639_1_TO_3) <= {"bo"}


def test_unknown_and_three_letter_tags() -> None:
    assert iso639_2("xx") == "und"
    assert iso639_2("hbs") == "hbs"
    assert iso639_1("hbs") == "hbs"
