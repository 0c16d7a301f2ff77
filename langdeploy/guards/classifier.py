"""A small prompt-injection classifier: hashed character n-grams plus heuristic features, scored
by logistic regression. numpy only, trained by benchmarks/train_injection.py; the weights ship as
langdeploy/guards/data/injection_model.npz (a few hundred KiB).

Scoring is vectorised: the n-gram hashes of the whole text come from a rolling hash over the
code points, and a sliding window (cumulative sums) finds the most suspicious passage, so an
attack hidden inside a long benign text is not diluted by it.
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

NGRAMS = (2, 3, 4, 5)
DIM = 1 << 16
WINDOW = 240  # characters of normalised text scored together
# N-gram weights are averaged, but over at least this many n-grams: a two-word text then scores
# by its heuristics and the bias, not by the luck of its handful of n-grams.
MIN_NGRAMS = 100.0
_MUL = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
MODEL_RESOURCE = "injection_model.npz"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def ngram_positions(text: str) -> tuple[IntArray, IntArray]:
    """Hash buckets of every n-gram of ``text`` (padded with spaces) and the position of each."""
    padded = f" {text} "
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    buckets: list[IntArray] = []
    positions: list[IntArray] = []
    length = len(codes)
    for n in NGRAMS:
        if length < n:
            continue
        count = length - n + 1
        h = np.full(count, np.uint64(n), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                h = (h * _MUL) ^ codes[k : k + count]
            h = (h ^ (h >> np.uint64(29))) * _MIX
        buckets.append((h >> np.uint64(40)).astype(np.int64) % DIM)
        positions.append(np.arange(count, dtype=np.int64))
    if not buckets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(buckets), np.concatenate(positions)


@dataclass
class InjectionModel:
    weights: FloatArray  # DIM n-gram weights followed by one weight per heuristic feature
    bias: float
    threshold: float
    feature_names: tuple[str, ...]

    @property
    def ngram_weights(self) -> FloatArray:
        return self.weights[:DIM]

    @property
    def feature_weights(self) -> FloatArray:
        return self.weights[DIM:]

    def ngram_logit(self, text: str) -> float:
        """The most suspicious window's n-gram contribution: the mean weight of its n-grams, so
        that length and repetition do not change the score, only content does."""
        buckets, positions = ngram_positions(text)
        if buckets.size == 0:
            return 0.0
        if len(text) + 2 <= WINDOW:
            return float(self.ngram_weights[buckets].sum() / max(buckets.size, MIN_NGRAMS))
        per_pos = np.bincount(positions, weights=self.ngram_weights[buckets])
        counts = np.bincount(positions).astype(np.float64)
        csum = np.concatenate(([0.0], np.cumsum(per_pos)))
        ccount = np.concatenate(([0.0], np.cumsum(counts)))
        stride = WINDOW // 4
        starts = np.arange(0, max(1, len(per_pos) - WINDOW) + stride, stride)
        starts = np.minimum(starts, max(0, len(per_pos) - WINDOW))
        ends = np.minimum(starts + WINDOW, len(per_pos))
        sums = csum[ends] - csum[starts]
        ns = np.maximum(ccount[ends] - ccount[starts], 1.0)
        return float(np.max(sums / np.maximum(ns, MIN_NGRAMS)))

    def segment_logits(self, texts: list[str]) -> FloatArray:
        """Each text's n-gram contribution as a whole, all texts in one vectorised pass."""
        padded = [f" {t} " for t in texts]
        lengths = np.array([len(p) for p in padded])
        owner = np.repeat(np.arange(len(texts)), lengths)
        codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
        codes = codes.astype(np.uint64)
        sums = np.zeros(len(texts))
        counts = np.zeros(len(texts))
        total = len(codes)
        for n in NGRAMS:
            if total < n:
                continue
            count = total - n + 1
            h = np.full(count, np.uint64(n), dtype=np.uint64)
            with np.errstate(over="ignore"):
                for k in range(n):
                    h = (h * _MUL) ^ codes[k : k + count]
                h = (h ^ (h >> np.uint64(29))) * _MIX
            buckets = (h >> np.uint64(40)).astype(np.int64) % DIM
            inside = owner[:count] == owner[n - 1 : n - 1 + count]  # n-grams within one text
            who = owner[:count][inside]
            sums += np.bincount(
                who, weights=self.ngram_weights[buckets[inside]], minlength=len(texts)
            )
            counts += np.bincount(who, minlength=len(texts))
        return np.asarray(sums / np.maximum(counts, MIN_NGRAMS))

    def logit(self, text: str, features: FloatArray, segments: list[str] | None = None) -> float:
        """Bias + the most suspicious of the whole text (by windows) and its sentences +
        heuristic features. Scoring sentences too keeps an attack appended to a benign
        question from being averaged away."""
        ngram = self.ngram_logit(text)
        if segments:
            ngram = max(ngram, float(self.segment_logits(segments).max()))
        return self.bias + ngram + float(self.feature_weights @ features)

    def probability(
        self, text: str, features: FloatArray, segments: list[str] | None = None
    ) -> float:
        return float(1.0 / (1.0 + np.exp(-self.logit(text, features, segments))))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=np.array([self.bias]),
            threshold=np.array([self.threshold]),
            feature_names=np.array(self.feature_names),
        )

    @classmethod
    def load(cls, path: Path | Any) -> InjectionModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                weights=data["weights"].astype(np.float64),
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
    except FileNotFoundError:
        raise LangdeployError(
            f"The prompt-injection model {MODEL_RESOURCE} is missing from the package.",
            fix="Reinstall langdeploy, or train it: python benchmarks/train_injection.py",
        ) from None


def train(
    texts: list[str],
    features: FloatArray,
    labels: npt.NDArray[np.float64],
    *,
    epochs: int = 400,
    lr: float = 0.5,
    l2: float = 1e-7,
    seed: int = 0,
) -> tuple[FloatArray, float]:
    """Full-batch logistic regression with Adam on sparse n-gram counts plus dense features."""
    rng = np.random.default_rng(seed)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    vals: list[FloatArray] = []
    for i, text in enumerate(texts):
        buckets, _ = ngram_positions(text)
        uniq, counts = np.unique(buckets, return_counts=True)
        rows.append(np.full(uniq.size, i, dtype=np.int64))
        cols.append(uniq)
        vals.append(counts / max(MIN_NGRAMS, buckets.size))
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    val = np.concatenate(vals)
    n, k = len(texts), features.shape[1]
    w = rng.normal(0, 1e-3, DIM + k)
    b = 0.0
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    mb = vb = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        z = np.bincount(row, weights=val * w[col], minlength=n) + features @ w[DIM:] + b
        p = 1.0 / (1.0 + np.exp(-z))
        err = (p - labels) / n
        grad = np.zeros_like(w)
        grad[:DIM] = np.bincount(col, weights=val * err[row], minlength=DIM)
        grad[DIM:] = features.T @ err
        grad[:DIM] += l2 * w[:DIM]
        grad[DIM:] += l2 * 0.01 * w[DIM:]  # few dense features: barely regularised
        gb = float(err.sum())
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        w -= lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        b -= lr * (mb / (1 - beta1**t)) / (np.sqrt(vb / (1 - beta2**t)) + eps)
        lr_decay = 0.995
        lr *= lr_decay
    return w, b
