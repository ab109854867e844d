"""Calibrate the embedding judge's similarity -> score mapping on OVO-Bench's multiple choice.

Positives: each question's reference answer vs its correct option, where the two texts differ
after normalization (paraphrases). Negatives: the reference answer vs the distractor options.
The mapping is a logistic fit J = sigmoid(slope * (cos - center)) with balanced class weights,
so J estimates P(correct | similarity) under equal priors. The ROC AUC says how much the
similarity separates right from wrong at all on this data (OVO's distractors are near-paraphrases
of the answer, a hard case for embeddings).

    python benchmarks/calibrate_embedding_judge.py --data ../shared/data/ovo-bench/ovo_bench_new.json \
        --json docs/bench/embedding_judge_calibration.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def fit_logistic(pos: np.ndarray, neg: np.ndarray, steps: int = 4000, lr: float = 0.5) -> tuple[float, float]:
    """Balanced-weight logistic regression on one feature; returns (slope, center)."""
    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones_like(pos), np.zeros_like(neg)]).astype(np.float64)
    w = np.where(y == 1, 0.5 / len(pos), 0.5 / len(neg))
    mu, sd = x.mean(), x.std() + 1e-9
    z = (x - mu) / sd
    a, b = 0.0, 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        g = w * (p - y)
        a -= lr * float((g * z).sum()) * 10
        b -= lr * float(g.sum()) * 10
    slope = a / sd
    center = mu - b * sd / a if a else mu
    return float(slope), float(center)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=Path("runs/bench/embedding_judge_calibration.json"))
    ap.add_argument("--max-questions", type=int, default=None)
    args = ap.parse_args()

    from evostreaming.eval.judges import normalize
    from evostreaming.eval.judges.embedding import EmbeddingJudge

    judge = EmbeddingJudge()
    rows = [r for r in json.loads(args.data.read_text()) if "options" in r and "answer" in r][: args.max_questions]
    pos_pairs, neg_pairs = [], []
    for r in rows:
        ans = str(r["answer"]).strip()
        for i, opt in enumerate(r["options"]):
            opt = str(opt).strip()
            if i == r["gt"]:
                if normalize(opt) != normalize(ans):
                    pos_pairs.append((ans, opt))
            else:
                neg_pairs.append((ans, opt))

    def sims(pairs):
        a = judge.model.encode([p[0] for p in pairs], normalize_embeddings=True, batch_size=64)
        b = judge.model.encode([p[1] for p in pairs], normalize_embeddings=True, batch_size=64)
        return (a * b).sum(axis=1)

    pos, neg = sims(pos_pairs), sims(neg_pairs)
    slope, center = fit_logistic(pos, neg)
    auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())

    def mapped(x):
        return 1.0 / (1.0 + np.exp(-slope * (x - center)))

    out = {
        "questions": len(rows),
        "positives": len(pos),
        "negatives": len(neg),
        "slope": round(slope, 3),
        "center": round(center, 4),
        "roc_auc": round(auc, 4),
        "mean_score_positives": float(mapped(pos).mean()),
        "mean_score_negatives": float(mapped(neg).mean()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(neg, bins=50, alpha=0.6, density=True, label=f"distractors (n={len(neg)})")
    ax.hist(pos, bins=50, alpha=0.6, density=True, label=f"paraphrased correct option (n={len(pos)})")
    ax.axvline(center, color="k", ls="--", label=f"J=0.5 at {center:.3f} (AUC {auc:.2f})")
    ax.set_xlabel("cosine similarity to the reference answer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.json.with_suffix(".png"), dpi=100)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
