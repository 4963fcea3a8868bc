"""Each engine setting is declared once, in `EngineOptions`, and is an ``STS_*`` variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from sts_service.backends import build_pipeline
from sts_service.backends.base import EngineOptions
from sts_service.config import StsSettings


def test_every_engine_option_is_a_setting_with_the_same_declaration() -> None:
    for name, field in EngineOptions.model_fields.items():
        assert f"STS_{name.upper()}" in StsSettings.env_vars()
        assert repr(StsSettings.model_fields[name]) == repr(field)


@pytest.mark.parametrize("name", sorted(EngineOptions.model_fields))
def test_every_engine_setting_reaches_the_backends(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    field = EngineOptions.model_fields[name]
    value: object
    if field.annotation is str:
        value = str(tmp_path)  # a folder that exists: the glossary folder is read when set
    elif field.annotation is int:
        value = int(field.default) + 7
    else:
        value = round(float(field.default) / 2 - 0.1, 3)
    monkeypatch.setenv(f"STS_{name.upper()}", str(value))
    options = StsSettings().engine_options()
    assert getattr(options, name) == value
    pipeline = build_pipeline("whisper", "apertium", "espeak", options=options)
    assert getattr(pipeline.asr.options, name) == value


def test_an_engine_setting_out_of_range_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STS_WHISPER_NO_SPEECH_THRESHOLD", "1.5")
    from shared_utils.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="STS_WHISPER_NO_SPEECH_THRESHOLD"):
        load_settings(StsSettings)
