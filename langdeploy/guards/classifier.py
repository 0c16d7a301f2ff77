"""A small prompt-injection classifier: TF-IDF over hashed character and word n-grams plus
heuristic features, scored by logistic regression. numpy only, trained by
benchmarks/train_injection.py; the weights ship as langdeploy/guards/data/injection_model.npz.

A text is scored as several documents at once: the whole text when it is short, otherwise
windows of it side by side, and its sentences. The most suspicious one decides, so an attack
hidden inside a long benign text is not diluted by it. Each document is a TF-IDF vector
(sublinear counts, inverse document frequency per hash bucket, L2-normalised per block), the
representation that generalises best on the cross-validated training data; it does not
change when a text is repeated, so boilerplate does not add up to an attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from langdeploy.errors import LangdeployError

NGRAMS = (3, 4, 5)
DIM = 1 << 16  # hash buckets per block (characters, words)
WINDOW = 240  # characters of normalised text scored together
MODEL_RESOURCE = "injection_model.npz"
_MUL = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_INV = np.uint64(pow(int(_MUL), -1, 1 << 64))  # _MUL is odd, so invertible modulo 2^64

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Docs:
    """Sparse TF-IDF rows of several documents: row, column (bucket) and value per entry."""

    rows: IntArray
    cols: IntArray
    vals: FloatArray
    count: int


def _word_hashes(codes: npt.NDArray[np.uint64], owner: IntArray) -> tuple[Any, IntArray]:
    """A hash per space-separated word of the joined, space-padded texts, and its text: a
    polynomial hash from prefix sums (uint64 arithmetic wraps, which is the modulus), made
    independent of the word's position by the inverse powers. Vectorised: no Python loop."""
    space = codes == 32
    starts = np.flatnonzero(~space[1:] & space[:-1]) + 1
    ends = np.flatnonzero(~space[:-1] & space[1:]) + 1
    if starts.size == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    n = len(codes)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(n, _MUL, dtype=np.uint64)) * _INV  # _MUL ** i
        inverse = np.cumprod(np.full(n, _INV, dtype=np.uint64)) * _MUL  # _MUL ** -i
        prefix = np.concatenate((np.zeros(1, np.uint64), np.cumsum(codes * powers)))
        h = (prefix[ends] - prefix[starts]) * inverse[starts]
        h = h ^ ((ends - starts).astype(np.uint64) << np.uint64(56))
    return h, owner[starts]


def hashed_ngrams(texts: list[str]) -> tuple[IntArray, IntArray]:
    """(owner, bucket) of every n-gram of every text: character 3-5-grams of the text padded
    with spaces in the first block, word unigrams and bigrams in the second. Words carry what
    character n-grams split ("forget ... instructions" at any distance)."""
    padded = [f" {t} " for t in texts]
    lengths = np.array([len(p) for p in padded], dtype=np.int64)
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    raw = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
    codes: npt.NDArray[np.uint64] = raw.astype(np.uint64)
    owners: list[IntArray] = []
    buckets: list[IntArray] = []
    total = len(codes)
    # The hash of each n-gram extends that of the (n-1)-gram at the same position by one
    # character: one pass per n-gram length, not n.
    h = codes.copy()
    for n in range(2, max(NGRAMS) + 1):
        if total < n:
            break
        count = total - n + 1
        with np.errstate(over="ignore"):
            h = (h[:count] * _MUL) ^ codes[n - 1 : n - 1 + count]
            if n not in NGRAMS:
                continue
            mixed = ((h + np.uint64(n)) ^ (h >> np.uint64(29))) * _MIX
        inside = owner[:count] == owner[n - 1 : n - 1 + count]  # n-grams within one text
        owners.append(owner[:count][inside])
        buckets.append((mixed[inside] >> np.uint64(40)).astype(np.int64) % DIM)
    words, word_owner = _word_hashes(codes, owner)
    if words.size:
        # Bigrams: consecutive words of one text.
        same = word_owner[:-1] == word_owner[1:]
        with np.errstate(over="ignore"):
            pairs = ((words[:-1] * _MUL) ^ (words[1:] + np.uint64(1)))[same]
        for hashes, who in ((words, word_owner), (pairs, word_owner[:-1][same])):
            with np.errstate(over="ignore"):
                mixed = (hashes ^ (hashes >> np.uint64(31))) * _MIX
            owners.append(who)
            buckets.append(DIM + (mixed >> np.uint64(40)).astype(np.int64) % DIM)
    if not owners:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(owners), np.concatenate(buckets)


def term_counts(texts: list[str]) -> tuple[IntArray, IntArray, IntArray]:
    """(row, column, count) of each distinct n-gram per text."""
    owner, bucket = hashed_ngrams(texts)
    keys = owner * (2 * DIM) + bucket
    if len(texts) * 2 * DIM < 2**31:
        keys = keys.astype(np.int32)  # sorts about twice as fast
    keys = np.sort(keys)
    if keys.size == 0:
        return keys, keys, keys
    first = np.concatenate(([True], keys[1:] != keys[:-1]))
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, keys.size))
    uniq = keys[starts]
    return uniq // (2 * DIM), uniq % (2 * DIM), counts


def tfidf(texts: list[str], idf: FloatArray) -> Docs:
    """Sublinear TF-IDF rows, L2-normalised per block (characters, words), so that neither
    block drowns the other and repeating a text does not change its score."""
    rows, cols, counts = term_counts(texts)
    vals = (1.0 + np.log(counts)) * idf[cols]
    block = rows * 2 + (cols >= DIM)
    norms = np.sqrt(np.bincount(block, weights=vals * vals, minlength=2 * len(texts)))
    return Docs(rows, cols, vals / np.maximum(norms[block], 1e-12), len(texts))


def fit_idf(texts: list[str]) -> FloatArray:
    """Smoothed inverse document frequency per bucket, as scikit-learn computes it."""
    _, cols, _ = term_counts(texts)
    df = np.bincount(cols, minlength=2 * DIM).astype(np.float64)
    return np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0


def documents(text: str, segments: list[str] | None = None) -> list[str]:
    """What one text is scored as: itself, or its windows when long; plus its sentences."""
    if len(text) <= WINDOW:
        docs = [text]
    else:
        # Side by side, not overlapping: the sentences below cover what a border cuts.
        docs = [text[s : s + WINDOW] for s in range(0, len(text), WINDOW)]
    return docs + list(segments or [])


@dataclass
class InjectionModel:
    weights: FloatArray  # 2 * DIM n-gram weights followed by one weight per heuristic feature
    idf: FloatArray
    bias: float
    threshold: float
    feature_names: tuple[str, ...]

    @property
    def ngram_weights(self) -> FloatArray:
        return self.weights[: 2 * DIM]

    @property
    def feature_weights(self) -> FloatArray:
        return self.weights[2 * DIM :]

    def ngram_logits(self, texts: list[str]) -> FloatArray:
        """Each document's n-gram contribution, all documents in one vectorised pass."""
        docs = tfidf(texts, self.idf)
        contrib = self.ngram_weights[docs.cols] * docs.vals
        return np.bincount(docs.rows, weights=contrib, minlength=docs.count).astype(np.float64)

    def logit(self, text: str, features: FloatArray, segments: list[str] | None = None) -> float:
        ngram = float(self.ngram_logits(documents(text, segments)).max()) if text else 0.0
        return self.bias + ngram + float(self.feature_weights @ features)

    def probability(
        self, text: str, features: FloatArray, segments: list[str] | None = None
    ) -> float:
        return float(1.0 / (1.0 + np.exp(-self.logit(text, features, segments))))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            idf=self.idf.astype(np.float16),
            bias=np.array([self.bias]),
            threshold=np.array([self.threshold]),
            feature_names=np.array(self.feature_names),
        )

    @classmethod
    def load(cls, path: Path | Any) -> InjectionModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                # float32 in memory: half the cache lines per lookup, and the weights are
                # stored as float16 anyway.
                weights=data["weights"].astype(np.float32),
                idf=data["idf"].astype(np.float32),
                bias=float(data["bias"][0]),
                threshold=float(data["threshold"][0]),
                feature_names=tuple(str(x) for x in data["feature_names"]),
            )


@cache
def bundled_model() -> InjectionModel:
    ref = resources.files("langdeploy.guards").joinpath("data", MODEL_RESOURCE)
    try:
        with resources.as_file(ref) as path:
            return InjectionModel.load(path)
    except (FileNotFoundError, KeyError):
        raise LangdeployError(
            f"The prompt-injection model {MODEL_RESOURCE} is missing from the package "
            "or was written by another version.",
            fix="Reinstall langdeploy, or train it: python benchmarks/train_injection.py",
        ) from None


def train(
    docs: Docs,
    features: FloatArray,
    labels: npt.NDArray[np.float64],
    *,
    epochs: int = 300,
    lr: float = 0.1,
    l2: float = 1e-5,
    seed: int = 0,
) -> tuple[FloatArray, float]:
    """L2-regularised logistic regression (mean log-loss + l2/2 |w|^2), full-batch Adam."""
    rng = np.random.default_rng(seed)
    n, k = docs.count, features.shape[1]
    row, col, val = docs.rows, docs.cols, docs.vals
    w = rng.normal(0, 1e-4, 2 * DIM + k)
    b = 0.0
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    mb = vb = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        z = np.bincount(row, weights=val * w[col], minlength=n) + features @ w[2 * DIM :] + b
        p = 1.0 / (1.0 + np.exp(-z))
        err = (p - labels) / n
        grad = l2 * w
        grad[: 2 * DIM] += np.bincount(col, weights=val * err[row], minlength=2 * DIM)
        grad[2 * DIM :] += features.T @ err
        gb = float(err.sum())
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        step = lr * (0.99 ** (t / 3))  # decays to about a third over 300 epochs
        w -= step * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        b -= step * (mb / (1 - beta1**t)) / (np.sqrt(vb / (1 - beta2**t)) + eps)
    return w, b
