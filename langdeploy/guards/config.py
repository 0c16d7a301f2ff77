"""guards.yaml: which guards run, per app and per chain, read through pydantic (extra="forbid").

```yaml
version: 1
defaults: true            # stages a file leaves out get the built-in defaults
input:                    # app-wide, for every chain that does not say otherwise
  - guard: prompt_injection
    action: block
    options: {threshold: 0.6}
output:
  - guard: pii
chains:
  chat:
    restore_redactions: false
    output:
      - guard: system_prompt_leak
        options: {canaries: ["c4n4ry-7f3a"]}
```

Errors name the file and the key, e.g. ``guards.yaml: chains.chat.input[0].options.threshold:
Input should be a valid number``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langdeploy.errors import ConfigError, UnknownNameError
from langdeploy.guards.base import ACTIONS, Action, Guard, Stage
from langdeploy.guards.events import Observer
from langdeploy.guards.registry import guard_registry
from langdeploy.guards.request import GuardPipeline


class GuardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guard: str = Field(
        ..., min_length=1, description="A registered guard (langdeploy guards list)."
    )
    name: str | None = Field(None, description="Instance name for logs and errors.")
    action: Action | None = Field(None, description="block, redact or warn; default: the guard's.")
    enabled: bool = Field(True, description="false keeps the entry but skips it.")
    options: dict[str, Any] = Field(default_factory=dict, description="The guard's options.")


class StageGuards(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[GuardEntry] | None = None
    output: list[GuardEntry] | None = None
    retrieval: list[GuardEntry] | None = None
    restore_redactions: bool | None = Field(
        None, description="Put input values back in place of their placeholders in answers."
    )


class GuardsFile(StageGuards):
    version: Literal[1] = 1
    defaults: bool = Field(True, description="Stages the file leaves out get the defaults.")
    chains: dict[str, StageGuards] = Field(default_factory=dict)


def _entry(guard: str, action: Action | None = None, **options: Any) -> GuardEntry:
    return GuardEntry(guard=guard, action=action, options=options)


Profile = Literal["chat", "document"]


def default_entries(profile: Profile, stage: Stage) -> list[GuardEntry]:
    """Defaults by a chain's guard profile (declared on its ChainSpec): the full set for a chat;
    for chains that take documents (summarize, rag, ...), injection only warns on input, since a
    document may quote instructions legitimately."""
    if stage == "retrieval":
        return [_entry("invisible_text"), _entry("prompt_injection")]
    if profile == "chat":
        if stage == "input":
            return [
                _entry("length"),
                _entry("prompt_injection"),
                _entry("invisible_text"),
                _entry("secrets"),
                _entry("pii"),
            ]
        return [
            _entry("secrets"),
            _entry("pii"),
            _entry("system_prompt_leak"),
            _entry("toxicity"),
            _entry("refusal"),
        ]
    if stage == "input":
        return [_entry("invisible_text"), _entry("secrets"), _entry("prompt_injection", "warn")]
    return [_entry("secrets"), _entry("pii"), _entry("toxicity", "warn")]


def load_guards_file(path: Path | None) -> GuardsFile:
    """The parsed guards.yaml, or the defaults when ``path`` is None."""
    if path is None:
        return GuardsFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"The guards file {path} does not exist.", fix="Fix guards.config, or create the file."
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Could not read {path}: {exc}", fix="Fix the YAML syntax.") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping, got {type(raw).__name__}.",
            fix="Start the file with keys such as input:, output:, chains:.",
        )
    try:
        return GuardsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path), fix="Fix the key in the guards file.") from None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(exc: ValidationError, path: Path | str) -> str:
    lines = [f"Invalid guards file {path}:"]
    for err in exc.errors():
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        got = err.get("input")
        got_text = (
            ""
            if isinstance(got, dict | list) or err["type"] == "extra_forbidden"
            else (f" (got {got!r})")
        )
        lines.append(f"  - {path}: {_loc(tuple(err['loc']))}: {msg}{got_text}")
    return "\n".join(lines)


@dataclass
class ChainGuards:
    """The built pipelines of one chain."""

    input: GuardPipeline
    output: GuardPipeline
    retrieval: GuardPipeline


def build_guard(
    entry: GuardEntry,
    stage: Stage,
    where: str,
    source: Path | str,
    context: dict[str, Any] | None = None,
) -> Guard:
    """One guard from its entry; errors name the file and the key."""
    try:
        cls = guard_registry.get(entry.guard)
    except UnknownNameError as exc:
        raise ConfigError(
            f"{source}: {where}.guard: {exc}", fix="Run `langdeploy guards list` for the names."
        ) from None
    if stage not in cls.stages:
        raise ConfigError(
            f"{source}: {where}.guard: the guard {entry.guard!r} does not run at the {stage} "
            f"stage (it runs at: {', '.join(cls.stages)}).",
            fix="Move it to a stage it supports.",
        )
    if entry.action is not None and entry.action not in cls.allowed_actions:
        raise ConfigError(
            f"{source}: {where}.action: the guard {entry.guard!r} does not support "
            f"{entry.action!r}.",
            fix=f"Use one of: {', '.join(a for a in ACTIONS if a in cls.allowed_actions)}.",
        )
    options = dict(entry.options)
    # Facts the app knows (the system prompt) fill options the file leaves out.
    for key, value in (context or {}).items():
        if key in cls.Options.model_fields and key not in options and value is not None:
            options[key] = value
    try:
        parsed = cls.Options.model_validate(options)
    except ValidationError as exc:
        lines = [f"Invalid options for the guard {entry.guard!r} in {source}:"]
        for err in exc.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            key = _loc(("options", *err["loc"]))
            lines.append(f"  - {source}: {where}.{key}: {msg}")
        raise ConfigError("\n".join(lines), fix="Fix the option in the guards file.") from None
    try:
        return cls(parsed, action=entry.action, instance_name=entry.name)
    except ConfigError:
        raise
    except Exception as exc:  # a guard refusing its options (for example a bad JSON Schema)
        raise ConfigError(
            f"{source}: {where}: the guard {entry.guard!r} rejected its options: {exc}",
            fix="Fix the options.",
        ) from None


def build_chain_guards(
    config: GuardsFile,
    chain: str,
    *,
    source: Path | str = "guards.yaml",
    observer: Observer | None = None,
    context: dict[str, Any] | None = None,
    profile: Profile = "document",
) -> ChainGuards:
    """The input, output and retrieval pipelines for ``chain``; stages the file leaves out get
    the defaults of the chain's guard ``profile``."""
    per_chain = config.chains.get(chain)
    pipelines: dict[str, GuardPipeline] = {}
    for stage in ("input", "output", "retrieval"):
        entries = getattr(per_chain, stage) if per_chain is not None else None
        where = f"chains.{chain}.{stage}"
        if entries is None:
            entries, where = getattr(config, stage), stage
        if entries is None:
            entries = default_entries(profile, stage) if config.defaults else []
            where = f"(default {stage} guards)"
        guards = [
            build_guard(e, stage, f"{where}[{i}]", source, context)
            for i, e in enumerate(entries)
            if e.enabled
        ]
        pipelines[stage] = GuardPipeline(stage, guards, observer, chain)
    restore = per_chain.restore_redactions if per_chain is not None else None
    if restore is None:
        restore = bool(config.restore_redactions)
    pipelines["output"].restore = restore
    return ChainGuards(pipelines["input"], pipelines["output"], pipelines["retrieval"])
