"""Train the prompt-injection classifier on the training split and write its weights.

    python benchmarks/train_injection.py [--out langdeploy/guards/data/injection_model.npz]

The threshold is chosen by 5-fold cross-validation on the training split (out-of-fold scores,
highest recall with a false-positive rate of at most 3%). The held-out split is not read here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from guards_data import Example, augment, load_injection  # noqa: E402

from langdeploy.guards import classifier  # noqa: E402
from langdeploy.guards.injection import FEATURES, heuristic_features, segments  # noqa: E402

OUT = ROOT / "langdeploy" / "guards" / "data" / classifier.MODEL_RESOURCE
TARGET_FPR = 0.03


SEGMENTS: dict[str, list[str]] = {}


def featurize(examples: list[Example]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts, feats = [], []
    for e in examples:
        f, analysed = heuristic_features(e.text)
        texts.append(analysed)
        feats.append(f)
        SEGMENTS[analysed] = segments(e.text)
    labels = np.array([e.label for e in examples], dtype=np.float64)
    return texts, np.vstack(feats), labels


def scores(w: np.ndarray, b: float, texts: list[str], feats: np.ndarray) -> np.ndarray:
    model = classifier.InjectionModel(w, b, 0.5, FEATURES)
    return np.array(
        [model.probability(t, f, SEGMENTS.get(t)) for t, f in zip(texts, feats, strict=True)]
    )


def pick_threshold(s: np.ndarray, y: np.ndarray, target_fpr: float) -> float:
    benign = np.sort(s[y == 0])
    # The smallest threshold whose false-positive rate on out-of-fold benign scores is allowed.
    k = int(np.floor(target_fpr * len(benign)))
    idx = max(0, len(benign) - 1 - k)
    return float(min(0.95, max(0.05, benign[idx] + 1e-6)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--show-errors", action="store_true", help="List out-of-fold errors.")
    args = parser.parse_args()

    base = load_injection("train")
    examples = augment(base)
    texts, feats, y = featurize(examples)
    groups = np.array([hash(e.text.split(" ")[0]) % 5 for e in examples])
    # Folds by the source example, so an augmented copy never lands in the other fold.
    source = {}
    for i, e in enumerate(base):
        source[e.text] = i % 5
    fold = np.array([source.get(e.text, -1) for e in examples])
    for i, e in enumerate(examples):
        if fold[i] == -1:
            # Augmented: find the base example it came from (a substring, or its base64).
            fold[i] = groups[i]
            for t, f in source.items():
                if t in e.text or t.lower().replace(" ", "") in e.text.lower().replace(" ", ""):
                    fold[i] = f
                    break
    oof = np.zeros(len(examples))
    for k in range(5):
        train, test = fold != k, fold == k
        w, b = classifier.train(
            [texts[i] for i in np.where(train)[0]], feats[train], y[train], epochs=args.epochs
        )
        oof[test] = scores(w, b, [texts[i] for i in np.where(test)[0]], feats[test])
    threshold = pick_threshold(oof, y, TARGET_FPR)
    pred = oof >= threshold
    recall = float(pred[y == 1].mean())
    fpr = float(pred[y == 0].mean())
    print(
        f"cross-validated on train: threshold {threshold:.3f}  recall {recall:.3f}  FPR {fpr:.3f}"
    )
    if args.show_errors:
        for i in np.argsort(-oof):
            if pred[i] != (y[i] == 1):
                kind = "FP" if pred[i] else "FN"
                print(f"  {kind} {oof[i]:.3f} {examples[i].kind:14} {examples[i].text[:110]!r}")
    w, b = classifier.train(texts, feats, y, epochs=args.epochs)
    model = classifier.InjectionModel(w, b, threshold, FEATURES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    top = np.argsort(-np.abs(model.feature_weights))
    print(
        "heuristic feature weights:",
        ", ".join(f"{FEATURES[i]}={model.feature_weights[i]:+.2f}" for i in top),
    )
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), "
        f"{len(examples)} training examples ({len(base)} before augmentation)"
    )


if __name__ == "__main__":
    main()
