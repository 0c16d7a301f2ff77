"""The settings tree, loaded once at the edge (CLI or create_app) and passed down.

Sources, highest first: keyword arguments, environment variables (``LANGDEPLOY_`` prefix, ``__``
between levels, so ``LANGDEPLOY_MODEL__MAX_TOKENS=64``), a ``.env`` file, then the app's
``langdeploy.toml``. No other module reads ``os.environ``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from langdeploy.errors import ConfigError, OptionError
from langdeploy.settings.sections import (
    AppSettings,
    BackendSettings,
    DeploySettings,
    GpuDeploySettings,
    GuardSettings,
    ModelSettings,
    RetrievalSettings,
    ServerSettings,
    SummarizeSettings,
)

# The sections live in sections.py; every name stays importable from langdeploy.settings.
__all__ = [
    "APP_CONFIG_FILE",
    "ENV_PREFIX",
    "AppSettings",
    "BackendSettings",
    "DeploySettings",
    "GpuDeploySettings",
    "GuardSettings",
    "ModelSettings",
    "RetrievalSettings",
    "ServerSettings",
    "Settings",
    "SummarizeSettings",
    "env_var_name",
    "find_app_dir",
    "load_settings",
]

ENV_PREFIX = "LANGDEPLOY_"
APP_CONFIG_FILE = "langdeploy.toml"


# Which langdeploy.toml the current load reads; a contextvar keeps load_settings re-entrant.
_toml_path_var: ContextVar[Path | None] = ContextVar("langdeploy_toml", default=None)


class Settings(BaseSettings):
    """Everything langdeploy can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
        # Lists are decoded by their own validators, so that comma lists work as well as JSON.
        enable_decoding=False,
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    summarize: SummarizeSettings = Field(default_factory=SummarizeSettings)
    app: AppSettings = Field(default_factory=AppSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_path_var.get(None)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_backend(self) -> Settings:
        for i, backend in enumerate([self.model, *self.model.fallbacks]):
            if backend.backend == "openai" and not backend.base_url:
                where = "model" if i == 0 else f"model.fallbacks[{i - 1}]"
                raise ValueError(
                    f"{where}.base_url is required when its backend is 'openai' "
                    "(set LANGDEPLOY_MODEL__BASE_URL=http://host:8000/v1)"
                )
        return self


def find_app_dir(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` that holds a langdeploy.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / APP_CONFIG_FILE).is_file():
            return candidate
    return None


def load_settings(app_dir: Path | None = None, **overrides: Any) -> Settings:
    """Load settings once, at the edge. Errors name the variable, the file and the allowed range."""
    app_dir = app_dir if app_dir is not None else find_app_dir()
    toml_file = app_dir / APP_CONFIG_FILE if app_dir is not None else None
    env_file = (app_dir / ".env") if app_dir is not None else Path(".env")
    token = _toml_path_var.set(toml_file)
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, toml_file)) from None
    except Exception as exc:  # a TOML syntax error, unreadable .env, and the like
        where = toml_file or env_file
        raise ConfigError(
            f"Could not read settings from {where}: {exc}", fix="Fix the file."
        ) from None
    finally:
        _toml_path_var.reset(token)
    if app_dir is not None and settings.app.dir is None:
        settings.app.dir = app_dir
    return settings


def env_var_name(loc: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _bounds(exc_ctx: dict[str, Any] | None) -> str:
    if not exc_ctx:
        return ""
    parts = []
    for key, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if key in exc_ctx:
            parts.append(f"{symbol} {exc_ctx[key]}")
    if "expected" in exc_ctx:
        parts.append(f"one of {exc_ctx['expected']}")
    return f" (allowed: {', '.join(parts)})" if parts else ""


def apply_overrides(
    settings: Settings, overrides: dict[str, Any], flags: dict[str, str] | None = None
) -> None:
    """Set ``section__field`` values (command-line options) on loaded settings, validated.

    A bad value raises :class:`OptionError` in the "Invalid settings" form, naming the option
    (``flags`` maps ``section__field`` to it, e.g. ``--port``) and the setting it sets.
    """
    flags = flags or {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, field = key.partition("__")
        try:
            setattr(getattr(settings, section), field, value)
        except ValidationError as exc:
            dotted = f"{section}.{field}"
            flag = flags.get(key)
            place = f"{flag} ({dotted})" if flag else dotted
            message = _describe(
                exc,
                None,
                where=functools.partial(_fixed_place, place),
                prefix=(section,),
                fix="Fix the option's value (see --help).",
            )
            raise OptionError(message) from None


def _fixed_place(place: str, _loc: tuple[str | int, ...]) -> str:
    return place


def _describe(
    exc: ValidationError,
    toml_file: Path | None,
    *,
    where: Callable[[tuple[str | int, ...]], str] | None = None,
    prefix: tuple[str, ...] = (),
    fix: str | None = None,
) -> str:
    lines = ["Invalid settings:"]
    for err in exc.errors():
        loc = prefix + tuple(part for part in err["loc"] if not isinstance(part, int))
        dotted = ".".join(str(p) for p in loc) or "(settings)"
        field = _field_for(loc)
        if where is not None:
            place = where(loc)
        else:
            place = f"{env_var_name(loc)} / {dotted} in {toml_file or APP_CONFIG_FILE}"
        detail = err["msg"]
        allowed = _field_bounds(field) if field is not None else ""
        if not allowed:
            allowed = _bounds(err.get("ctx"))
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" got {got!r};"
        lines.append(f"  - {place}:{got_text} {detail}{allowed}.")
        if field is not None and field.description:
            lines.append(f"    ({field.description})")
    lines.append(fix or f"Fix the value in the environment, .env or {APP_CONFIG_FILE}.")
    return "\n".join(lines)


def _field_for(loc: tuple[str | int, ...]) -> Any:
    model: Any = Settings
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return field if part == loc[-1] and field is not None else None
        field = fields[part]
        model = field.annotation
    return field


def _field_bounds(field: Any) -> str:
    parts = []
    for meta in field.metadata:
        for key, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, key, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return f" (allowed: {', '.join(parts)})" if parts else ""
