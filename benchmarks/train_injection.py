"""Train the prompt-injection classifier on the training split and write its weights.

    python benchmarks/train_injection.py [--out langdeploy/guards/data/injection_model.npz]

Hyperparameters and the threshold come from 5-fold cross-validation on the training split:
out-of-fold scores of the written examples (augmented copies are trained on, never scored), and
the threshold is the lowest one whose false-positive rate there is at most --target-fpr. An
augmented copy is trained on only in folds that test none of the examples it was made from.
The held-out split is not read here.
"""

from __future__ import annotations

import argparse
import sys
import time
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


def featurize(examples: list[Example]) -> tuple[list[str], np.ndarray, list[list[str]]]:
    texts, feats, segs = [], [], []
    for e in examples:
        f, analysed = heuristic_features(e.text)
        texts.append(analysed)
        feats.append(f)
        segs.append(segments(e.text))
    return texts, np.vstack(feats), segs


def fit(
    texts: list[str], feats: np.ndarray, y: np.ndarray, args: argparse.Namespace
) -> classifier.InjectionModel:
    idf = classifier.fit_idf(texts)
    docs = classifier.tfidf(texts, idf)
    # Heuristic features are scaled for training (so the L2 penalty weighs them as chosen) and
    # their weights scaled back, so that scoring takes the raw features.
    w, b = classifier.train(docs, feats * args.feature_scale, y, epochs=args.epochs, l2=args.l2)
    w[2 * classifier.DIM :] *= args.feature_scale
    return classifier.InjectionModel(w, idf, b, 0.5, FEATURES)


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
    parser.add_argument("--l2", type=float, default=3e-6, help="L2 penalty (mean log-loss).")
    parser.add_argument(
        "--feature-scale", type=float, default=0.3, help="Heuristic features' scale in training."
    )
    parser.add_argument("--target-fpr", type=float, default=TARGET_FPR)
    parser.add_argument("--show-errors", action="store_true", help="List out-of-fold errors.")
    parser.add_argument("--cv-only", action="store_true", help="Report the folds, write nothing.")
    args = parser.parse_args()

    started = time.perf_counter()
    base = load_injection("train")
    examples = augment(base)
    texts, feats, segs = featurize(examples)
    y = np.array([e.label for e in examples], dtype=np.float64)
    fold_of = {e.text: i % 5 for i, e in enumerate(base)}
    touches = [{fold_of[s] for s in (e.sources or (e.text,))} for e in examples]
    written = np.array(["+aug" not in e.kind for e in examples])
    oof = np.zeros(len(examples))
    for k in range(5):
        train = np.array([k not in t for t in touches])
        idx = np.where(train)[0]
        model = fit([texts[i] for i in idx], feats[train], y[train], args)
        for i in np.where(written & np.array([fold_of.get(e.text) == k for e in examples]))[0]:
            oof[i] = model.probability(texts[i], feats[i], segs[i])
        print(f"  fold {k + 1}/5 done ({time.perf_counter() - started:.0f} s)", flush=True)
    threshold = pick_threshold(oof[written], y[written], args.target_fpr)
    pred = oof >= threshold
    recall = float(pred[written & (y == 1)].mean())
    fpr = float(pred[written & (y == 0)].mean())
    at5 = oof >= pick_threshold(oof[written], y[written], 0.05)
    print(
        f"cross-validated on train ({int(written.sum())} written examples): threshold "
        f"{threshold:.3f}  recall {recall:.3f}  FPR {fpr:.3f}  "
        f"(recall at FPR 0.05: {float(at5[written & (y == 1)].mean()):.3f})"
    )
    if args.show_errors:
        for i in np.argsort(-oof):
            if written[i] and pred[i] != (y[i] == 1):
                kind = "FP" if pred[i] else "FN"
                print(f"  {kind} {oof[i]:.3f} {examples[i].kind:14} {examples[i].text[:110]!r}")
    if args.cv_only:
        return
    model = fit(texts, feats, y, args)
    model.threshold = threshold
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
