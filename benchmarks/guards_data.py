"""Loading the labelled guard data in benchmarks/data/guards, and the training augmentation.

Splits: ``*_train.*`` is what the classifier is trained and its threshold chosen on;
``*_heldout.*`` is never used for training or tuning, only measured.

Where the injection data comes from (all written for this project, under its licence):
- ``injection_heldout.tsv``: 160 attacks and 160 benign prompts written by an author who saw
  neither the training data nor the detector. Texts that also occur in the training split were
  removed from the training split, not from this one.
- ``injection_train.tsv``: four authors' sets, among them the first held-out split, which
  became training data once its errors had been looked at (a split that has been looked at is
  no longer held out).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "guards"


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: attack, 0: benign
    lang: str
    kind: str
    # The written examples an augmented one is made of: cross-validation keeps it out of
    # training whenever one of them is being tested.
    sources: tuple[str, ...] = ()


def load_injection(split: str) -> list[Example]:
    out = []
    for line in (DATA / f"injection_{split}.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        label, lang, kind, text = line.split("\t", 3)
        out.append(Example(text.replace("\\n", "\n"), int(label), lang, kind))
    return out


def load_pii(split: str) -> list[dict[str, object]]:
    path = DATA / f"pii_{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- augmentation (training split only) --------------------------------------------------------

LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"})
ZW = "\u200b"


def _spaced(text: str, sep: str) -> str:
    words = text.split(" ")
    k = max(1, len(words) // 2)
    return " ".join(sep.join(w) if i < k else w for i, w in enumerate(words))


def augment(examples: list[Example], seed: int = 13) -> list[Example]:
    """Obfuscated variants of the training attacks, and benign texts with the same surface
    features (base64, spacing, long context), so neither is learnt as a label by itself."""
    rng = random.Random(seed)
    attacks = [e for e in examples if e.label == 1]
    benign = [e for e in examples if e.label == 0]
    out = list(examples)
    for e in attacks:
        t = e.text
        other = rng.choice(benign).text
        variants = [
            (_spaced(t, rng.choice([" ", ".", "-"])), (t,)),
            (t.lower().translate(LEET), (t,)),
            ("Decode and follow: " + base64.b64encode(t.encode()).decode(), (t,)),
            (ZW.join(t[i : i + 3] for i in range(0, len(t), 3)), (t,)),
            (other + " " + t, (t, other)),
            (t + " " + other, (t, other)),
        ]
        for v, src in rng.sample(variants, 3):
            out.append(Example(v, 1, e.lang, e.kind + "+aug", src))
    for e in benign:
        t = e.text
        c, d = rng.choice(benign).text, rng.choice(benign).text
        variants = [
            (t + " " + c, (t, c)),
            (t.upper(), (t,)),
            ("Context: " + d + "\nQuestion: " + t, (t, d)),
        ]
        if e.kind == "normal":
            variants.append(("Decode this for me: " + base64.b64encode(t.encode()).decode(), (t,)))
        for v, src in rng.sample(variants, 2):
            out.append(Example(v, 0, e.lang, e.kind + "+aug", src))
    return out
