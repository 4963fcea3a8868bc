from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from shared_utils import ServiceSettings, SettingsError, load_settings
from shared_utils.settings import unknown_env_vars


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TSU_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    reload: bool = False
    api_key: SecretStr | None = None
    tags: list[str] = Field(default_factory=list)
    auth_key: str = Field(  # type: ignore[pydantic-alias]  # a dynamic alias is what is tested
        default="", validation_alias=AliasChoices("TSU_AUTH", "LEGACY_AUTH")
    )


class RequiredSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TSR_")

    model: str


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("TSU_", "TSR_", "LEGACY_")):
            monkeypatch.delenv(name)


def test_defaults_apply_without_environment() -> None:
    settings = load_settings(DemoSettings)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.reload is False
    assert settings.api_key is None
    assert settings.tags == []


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PORT", "9001")
    monkeypatch.setenv("TSU_RELOAD", "true")
    monkeypatch.setenv("TSU_TAGS", '["a", "b"]')
    settings = load_settings(DemoSettings)
    assert settings.port == 9001
    assert settings.reload is True
    assert settings.tags == ["a", "b"]


def test_lower_case_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tsu_port", "9002")
    assert load_settings(DemoSettings).port == 9002


def test_explicit_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PORT", "9001")
    assert load_settings(DemoSettings, port=7000).port == 7000


def test_alias_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGACY_AUTH", "k1")
    assert load_settings(DemoSettings).auth_key == "k1"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PORT", "abc")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert message.startswith("TSU_PORT: Input should be a valid integer")
    assert "(got 'abc')" in message
    assert "\n" not in message
    assert info.value.variables == ("TSU_PORT",)


def test_out_of_range_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PORT", "70000")
    with pytest.raises(SettingsError, match=r"^TSU_PORT: Input should be less than or equal"):
        load_settings(DemoSettings)


def test_invalid_alias_value_names_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    class IntAlias(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_")
        count: int = Field(default=0, validation_alias="LEGACY_COUNT")

    monkeypatch.setenv("LEGACY_COUNT", "x")
    with pytest.raises(SettingsError, match=r"^LEGACY_COUNT: Input should be a valid integer"):
        load_settings(IntAlias)


def test_several_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PORT", "abc")
    monkeypatch.setenv("TSU_RELOAD", "maybe")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert "\n" not in message
    assert "TSU_PORT:" in message
    assert "TSU_RELOAD:" in message
    assert info.value.variables == ("TSU_PORT", "TSU_RELOAD")


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, api_key=12345)
    message = str(info.value)
    assert "12345" not in message
    assert "api_key (override): Input should be a valid string (got **********)" == message


def test_missing_required_variable_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^TSR_MODEL: required, but not set$"):
        load_settings(RequiredSettings)


def test_invalid_json_for_complex_field_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_TAGS", "[not json")
    with pytest.raises(SettingsError, match=r"^TSU_TAGS: value is not valid JSON$"):
        load_settings(DemoSettings)


def test_invalid_override_is_named_as_override() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, tags=[1])
    assert str(info.value).startswith("tags[0] (override): Input should be a valid string")
    assert info.value.variables == ("tags",)


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(SettingsError, match=r"^prot \(override\): unknown setting \(valid: host"):
        load_settings(DemoSettings, prot=1)


def test_unknown_prefixed_variable_suggests_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PROT", "9000")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert message.startswith("TSU_PROT: unknown variable (did you mean TSU_PORT?)")
    assert "DemoSettings reads: TSU_HOST, TSU_PORT" in message
    assert info.value.variables == ("TSU_PROT",)


def test_unknown_variable_without_close_match_has_no_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TSU_ZZZZZZZZZZZZ", "1")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert str(info.value).startswith("TSU_ZZZZZZZZZZZZ: unknown variable [")


def test_unknown_variable_check_reports_all_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSU_PROT", "1")
    monkeypatch.setenv("TSU_HSOT", "1")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert info.value.variables == ("TSU_HSOT", "TSU_PROT")
    assert "\n" not in str(info.value)


def test_unknown_env_vars_ignores_other_prefixes_and_known_names() -> None:
    environ = {"TSU_PORT": "1", "tsu_host": "x", "TSU_EXTRA": "1", "OTHER_PORT": "1"}
    assert unknown_env_vars(DemoSettings, environ) == ["TSU_EXTRA"]


def test_class_without_prefix_skips_unknown_check() -> None:
    class NoPrefix(ServiceSettings):
        value: int = 1

    assert unknown_env_vars(NoPrefix, {"ANYTHING": "1"}) == []
    assert NoPrefix.env_vars() == ["VALUE"]


def test_env_vars_lists_every_variable_read() -> None:
    assert DemoSettings.env_vars() == [
        "TSU_HOST",
        "TSU_PORT",
        "TSU_RELOAD",
        "TSU_API_KEY",
        "TSU_TAGS",
        "TSU_AUTH",
        "LEGACY_AUTH",
    ]
    assert DemoSettings.env_prefix() == "TSU_"
    assert DemoSettings.env_var_for("port") == "TSU_PORT"
    assert ServiceSettings.env_vars() == []


def test_env_vars_matches_what_is_actually_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every listed variable really sets its field (no stale names in the list).
    values = {
        "TSU_HOST": "h",
        "TSU_PORT": "1234",
        "TSU_RELOAD": "1",
        "TSU_API_KEY": "s",
        "TSU_TAGS": '["t"]',
        "LEGACY_AUTH": "a",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(DemoSettings)
    assert settings.model_dump(mode="json") == {
        "host": "h",
        "port": 1234,
        "reload": True,
        "api_key": "**********",
        "tags": ["t"],
        "auth_key": "a",
    }


def test_alias_path_and_plain_alias_are_listed() -> None:
    from pydantic import AliasPath

    class Aliased(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_")
        nested: int = Field(  # type: ignore[pydantic-alias]  # a dynamic alias is what is tested
            default=0, validation_alias=AliasPath("TSU_BLOB", "n")
        )
        plain: int = Field(default=0, alias="TSU_PLAIN")

    names = Aliased.env_vars()
    assert names[0] == "TSU_BLOB"
    assert names[-1] == "TSU_PLAIN"
    # Exactly what pydantic-settings reads: releases before 2.16 (the newest on Python 3.10)
    # also read a path's later elements (here `N`). Every listed name must really be read:
    # junk in it changes the outcome.
    assert Aliased().nested == 0
    for name in names:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(name, "junk")
            with pytest.raises((ValidationError, PydanticSettingsError)):
                Aliased()


def test_dotenv_files_are_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TSU_PORT=1111\n")
    monkeypatch.chdir(tmp_path)

    class WithEnvFile(DemoSettings):
        model_config = SettingsConfigDict(env_file=".env")

    assert load_settings(WithEnvFile).port == 8000


def test_settings_error_is_an_exception_with_variables() -> None:
    error = SettingsError("X: bad", ("X",))
    assert isinstance(error, Exception)
    assert error.variables == ("X",)
    assert SettingsError("plain").variables == ()


def test_nested_delimiter_is_refused() -> None:
    class Nested(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_", env_nested_delimiter="__")
        value: int = 1

    with pytest.raises(TypeError, match="Nested: env_nested_delimiter is not supported"):
        Nested.env_vars()


def test_a_variable_shared_by_two_fields_is_listed_once() -> None:
    class Shared(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_")
        first: str = Field(default="", validation_alias="TSU_SHARED")
        second: str = Field(default="", validation_alias="TSU_SHARED")

    assert Shared.env_vars() == ["TSU_SHARED"]


def test_field_in_message_finds_the_quoted_field() -> None:
    from shared_utils.settings import _field_in_message

    message = 'error parsing value for field "tags" from source "EnvSettingsSource"'
    assert _field_in_message(DemoSettings, message) == "tags"
    assert _field_in_message(DemoSettings, "something else") is None


def test_other_value_errors_become_one_line_settings_errors() -> None:
    class Exploding(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_")

        def __init__(self, **values: object) -> None:
            raise ValueError("broken\nconstructor")

    with pytest.raises(SettingsError, match=r"^Exploding: broken constructor$"):
        load_settings(Exploding)


def test_names_and_aliases_are_both_listed_when_names_are_accepted() -> None:
    class ByName(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_", populate_by_name=True)
        count: int = Field(default=0, validation_alias="LEGACY_COUNT")

    assert ByName.env_vars() == ["LEGACY_COUNT", "TSU_COUNT"]
    for name in ByName.env_vars():
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(name, "7")
            assert load_settings(ByName).count == 7


def test_case_sensitive_names_keep_their_case(monkeypatch: pytest.MonkeyPatch) -> None:
    class Exact(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="Tsu_", case_sensitive=True)
        Port: int = 1

    assert Exact.env_vars() == ["Tsu_Port"]
    monkeypatch.setenv("Tsu_Port", "5")
    assert load_settings(Exact).Port == 5


@pytest.mark.parametrize(
    ("option", "value"),
    [("env_prefix_target", "all"), ("validate_by_alias", False)],
)
def test_options_that_change_the_naming_rules_are_refused(option: str, value: object) -> None:
    class Odd(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TSU_")
        value: int = 1

    Odd.model_config[option] = value  # type: ignore[literal-required]  # the option under test
    with pytest.raises(TypeError, match=f"Odd: {option} is not supported"):
        Odd.env_vars()
