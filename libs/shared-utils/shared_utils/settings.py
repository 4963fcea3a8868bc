"""Service settings from environment variables, with start-up errors that name the variable.

Each service subclasses `ServiceSettings` with its own prefix and fields::

    class StsSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="STS_")

        host: str = "127.0.0.1"
        port: int = 8000

and builds it once at start-up with `load_settings(StsSettings)`. Only the process environment
and explicit overrides are read: no `.env` file and no secrets directory, so what a service
reads is exactly what `env_vars()` lists.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from pydantic import AliasChoices, AliasPath, SecretBytes, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

S = TypeVar("S", bound="ServiceSettings")

_REDACTED = "**********"
#: Field annotations whose values are never echoed in error messages.
_SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes)
#: Configuration that changes which variables are read: option -> (the only value supported,
#: what to do instead). The other values would make `env_vars()` depend on rules that differ
#: between pydantic-settings releases.
_FIXED_OPTIONS: dict[str, tuple[object, str]] = {
    "env_nested_delimiter": (None, "read complex values as JSON from one variable"),
    "env_prefix_target": ("variable", "name alias variables in full"),
    "validate_by_alias": (True, "drop the alias instead"),
}


class SettingsError(Exception):
    """Settings could not be loaded. The message is one line naming every bad variable.

    Attributes:
        variables: The environment variables (or override keywords) at fault, in order.
    """

    def __init__(self, message: str, variables: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.variables = variables


class ServiceSettings(BaseSettings):
    """Base class for the settings of a service.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="STS_")`` (the prefix is merged
    with the configuration below) and declare their fields. Field values come from explicit
    keyword arguments first, then from environment variables named ``<PREFIX><FIELD>`` (upper
    case; matching is case-insensitive). Complex fields (lists, dicts, models) are read as JSON
    from a single variable; nested ``__`` variables are not supported.

    Example:
        >>> class DemoSettings(ServiceSettings):
        ...     model_config = SettingsConfigDict(env_prefix="DEMO_")
        ...     port: int = 8000
        >>> DemoSettings.env_vars()
        ['DEMO_PORT']
    """

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        env_nested_delimiter=None,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read explicit keyword arguments, then the environment; never `.env` or secret files."""
        return (init_settings, env_settings)

    @classmethod
    def env_prefix(cls) -> str:
        """The environment variable prefix of this class, upper case (e.g. ``"STS_"``)."""
        return str(cls.model_config.get("env_prefix") or "").upper()

    @classmethod
    def env_vars(cls) -> list[str]:
        """Every environment variable this class reads, upper case, in field order.

        The names follow pydantic-settings' documented naming rules (prefix, aliases, case), so
        they are listed as they are read; tests pin that every listed name is really read.

        Raises:
            TypeError: if the class sets ``env_nested_delimiter``, ``env_prefix_target`` or
                ``validate_by_alias=False`` (not supported).

        Example:
            >>> ServiceSettings.env_vars()
            []
        """
        names: list[str] = []
        for env_names in cls._env_names_by_field().values():
            for name, _key in env_names:
                if name not in names:
                    names.append(name)
        return names

    @classmethod
    def env_var_for(cls, field_name: str) -> str:
        """The (first) environment variable that sets `field_name`.

        Raises:
            KeyError: if the class has no such field.
        """
        return cls._env_names_by_field()[field_name][0][0]

    @classmethod
    def _env_names_by_field(cls) -> dict[str, list[tuple[str, str]]]:
        """Field name -> [(variable, validation key)], by pydantic-settings' documented rules.

        Built from public configuration only (``env_prefix``, ``case_sensitive``,
        ``populate_by_name``/``validate_by_name``) and each field's ``validation_alias``: an
        alias is read verbatim (no prefix), an `AliasPath` by its first element, and the
        prefixed field name is read when the field has no alias or names are accepted too.
        Options that would change those rules are refused rather than guessed.
        """
        config = cls.model_config
        for option, (supported, instead) in _FIXED_OPTIONS.items():
            if config.get(option, supported) not in (supported, "" if supported is None else None):
                raise TypeError(f"{cls.__name__}: {option} is not supported; {instead}")
        prefix = str(config.get("env_prefix") or "")
        by_name = bool(config.get("populate_by_name") or config.get("validate_by_name"))
        case = str if config.get("case_sensitive", False) else str.upper
        result: dict[str, list[tuple[str, str]]] = {}
        for field_name, field in cls.model_fields.items():
            keys = _alias_keys(field.validation_alias)
            if not keys or by_name:
                keys.append((prefix + field_name, field_name))
            result[field_name] = [(case(env_name), key) for env_name, key in keys]
        return result

    @classmethod
    def _is_secret(cls, field_name: str) -> bool:
        annotation = cls.model_fields[field_name].annotation
        candidates = (annotation, *get_args(annotation))
        return any(
            isinstance(candidate, type) and issubclass(candidate, _SECRET_TYPES)
            for candidate in candidates
        )


def _alias_keys(alias: str | AliasPath | AliasChoices | None) -> list[tuple[str, str]]:
    """[(variable, validation key)] for a field's validation alias; a path is read by its head.

    (pydantic-settings before 2.16 also read a path's later string elements as variables, a bug
    fixed in 2.16: they are not listed.)
    """
    choices = alias.choices if isinstance(alias, AliasChoices) else [] if alias is None else [alias]
    heads = [str(c.path[0]) if isinstance(c, AliasPath) else c for c in choices]
    return [(head, head) for head in heads]


def unknown_env_vars(
    cls: type[ServiceSettings], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Variables in `environ` that carry the class's prefix but that the class does not read.

    Returns an empty list when the class has no prefix (every variable would match).
    """
    prefix = cls.env_prefix()
    if not prefix:
        return []
    env = os.environ if environ is None else environ
    known = set(cls.env_vars())
    fold = str if cls.model_config.get("case_sensitive", False) else str.upper
    return sorted(
        name for name in env if name.upper().startswith(prefix) and fold(name) not in known
    )


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build `cls` from the environment; keyword `overrides` win over the environment.

    Raises:
        SettingsError: one line naming each unknown prefixed variable (with a suggestion), or
            else each invalid value, e.g.
            ``STS_PORT: Input should be a valid integer (got 'abc')``.

    Example:
        >>> class DemoSettings(ServiceSettings):
        ...     model_config = SettingsConfigDict(env_prefix="DEMO_")
        ...     port: int = 8000
        >>> load_settings(DemoSettings, port=9000).port
        9000
    """
    unknown = unknown_env_vars(cls)
    if unknown:
        known = cls.env_vars()
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            parts.append(f"{name}: unknown variable{hint}")
        raise SettingsError(
            f"{'; '.join(parts)} [{cls.__name__} reads: {', '.join(known) or 'nothing'}]",
            tuple(unknown),
        )
    try:
        values: dict[str, Any] = dict(overrides)
        return cls(**values)
    except ValidationError as exc:
        parts, names = _describe_validation_error(cls, exc, overrides)
        raise SettingsError("; ".join(parts), names) from None
    except ValueError as exc:
        # pydantic_settings.SettingsError (a ValueError, not exported by every supported
        # version): a complex field's variable is not valid JSON.
        field_name = _field_in_message(cls, str(exc))
        if field_name is None:
            text = " ".join(str(exc).split())
            raise SettingsError(f"{cls.__name__}: {text}") from None
        name = cls.env_var_for(field_name)
        raise SettingsError(f"{name}: value is not valid JSON", (name,)) from None


def _describe_validation_error(
    cls: type[ServiceSettings], exc: ValidationError, overrides: Mapping[str, object]
) -> tuple[list[str], tuple[str, ...]]:
    # Errors are located by field name, or by alias for aliased fields: map both to variables.
    by_key: dict[str, tuple[str, str]] = {}
    for field_name, env_names in cls._env_names_by_field().items():
        by_key.setdefault(field_name, (env_names[0][0], field_name))
        for env_name, key in env_names:
            by_key[key] = (env_name, field_name)
    parts: list[str] = []
    names: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        key = str(loc[0]) if loc else ""
        where = "".join(f"[{part}]" for part in loc[1:])
        env_name, field_name = by_key.get(key, (key.upper() or cls.__name__, ""))
        if key in overrides:
            name = key
            label = f"{key}{where} (override)"
        else:
            name = env_name
            label = f"{env_name}{where}"
        if error["type"] == "missing":
            message = "required, but not set"
        elif error["type"] == "extra_forbidden":
            message = f"unknown setting (valid: {', '.join(cls.model_fields) or 'none'})"
        elif field_name and cls._is_secret(field_name):
            message = f"{error['msg']} (got {_REDACTED})"
        else:
            message = f"{error['msg']} (got {_short_repr(error.get('input'))})"
        parts.append(f"{label}: {message}")
        names.append(name)
    return parts, tuple(names)


def _field_in_message(cls: type[ServiceSettings], message: str) -> str | None:
    for name in cls.model_fields:
        if f'"{name}"' in message:
            return name
    return None


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
