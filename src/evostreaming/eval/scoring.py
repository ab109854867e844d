"""RealStreamEval scoring: exactly the paper's per-sample formula, then aggregation and diagnostics.

Per sample, with T the steps at which the model responded and T* the gold answer times:

    S = [ (1/|T*|) * sum_{t* in T*} max_{t in T, |t - t*| <= delta} J(a_t, a*_{t*}) ] * M(R_ans) - P_early

* R_ans = |T| / number of steps of the sample.
* FAR: M = 1 if R_ans < 0.4 else max(1 - 0.2 * floor(5 * R_ans), 0.2); P_early = 0.1 if the model
  responded before the evidence; delta = ``far_delta_s`` (default 4 s = 2 steps at 0.5 fps).
* RTVP / BT: delta = 0; M = 0.5 if the model responded more than once, else 1; P_early = 0.
* An empty max (no response within delta) counts 0. The formula can go negative (a premature
  talker with no correct answer gets -0.1); it is reported as is, not clipped.

Times are compared on the step grid: step k is at k / fps; a gold time t* falls on the first
step at or after it (the first moment its evidence can have been seen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from evostreaming.eval.schema import REGIMES, Sample

EPS = 1e-9


@dataclass(frozen=True)
class ScoreConfig:
    far_delta_s: float = 4.0
    p_early: float = 0.1
    correct_at: float = 0.5  # J >= this counts as a correct response in the diagnostics


@dataclass
class StepRecord:
    step: int
    time: float
    action: str  # "silent" | "respond"
    text: str = ""
    tokens: int = 0
    latency_s: float = 0.0


@dataclass
class SampleScore:
    id: str
    task: str
    regime: str
    video: str
    score: float
    accuracy: float  # the bracket, before M and P_early
    multiplier: float
    premature: bool
    r_ans: float
    n_steps: int
    n_responses: int
    gold_hits: list[float] = field(default_factory=list)  # best J per gold answer
    correct_responses: int = 0
    premature_responses: int = 0
    late_responses: int = 0
    redundant_responses: int = 0
    latencies_s: list[float] = field(default_factory=list)  # evidence -> first correct answer
    tokens: list[int] = field(default_factory=list)
    judge_failures: int = 0


def far_multiplier(r_ans: float) -> float:
    if r_ans < 0.4:
        return 1.0
    return max(1.0 - 0.2 * math.floor(5.0 * r_ans + EPS), 0.2)


def step_of(t: float, fps: float) -> int:
    """The first step whose time k/fps is at or after t."""
    return max(0, math.ceil(t * fps - EPS))


Judge = Callable[[str, "GoldLike"], float | None]  # None = judge failure


class GoldLike:  # typing helper: a GoldAnswer
    answer: str


def score_sample(
    sample: Sample, steps: Sequence[StepRecord], judge: Judge, cfg: ScoreConfig = ScoreConfig()
) -> SampleScore:
    n = len(steps)
    if n == 0:
        raise ValueError(f"sample {sample.id}: empty trajectory")
    fps = sample.fps
    responses = [s for s in steps if s.action == "respond"]
    far = sample.regime == "FAR"
    delta = round(cfg.far_delta_s * fps) if far else 0
    evidence_step = step_of(sample.evidence_time(), fps)

    judged: dict[tuple[int, int], float] = {}
    failures = 0
    for r in responses:
        for gi, gold in enumerate(sample.answers):
            if abs(r.step - step_of(gold.time, fps)) <= delta:
                j = judge(r.text, gold)
                if j is None:
                    failures += 1
                    j = 0.0
                judged[(r.step, gi)] = float(j)

    hits, latencies = [], []
    for gi, gold in enumerate(sample.answers):
        cands = [(r.step, judged[(r.step, gi)]) for r in responses if (r.step, gi) in judged]
        hits.append(max((j for _, j in cands), default=0.0))
        good = sorted(k for k, j in cands if j >= cfg.correct_at)
        if good:
            ev = gold.evidence_start if gold.evidence_start is not None else gold.time
            latencies.append(max(0.0, good[0] / fps - ev))
    accuracy = sum(hits) / len(hits)
    r_ans = len(responses) / n
    if far:
        multiplier = far_multiplier(r_ans)
        premature = any(r.step < evidence_step for r in responses)
        penalty = cfg.p_early if premature else 0.0
    else:
        multiplier = 0.5 if len(responses) > 1 else 1.0
        premature = False
        penalty = 0.0

    # Diagnostics: classify every response.
    correct = premature_n = late = redundant = 0
    answered: set[int] = set()
    for r in responses:
        matched = [gi for gi in range(len(sample.answers)) if judged.get((r.step, gi), 0.0) >= cfg.correct_at]
        if r.step < evidence_step:
            premature_n += 1
        elif matched and not set(matched) <= answered:
            correct += 1
            answered.update(matched)
        elif matched or any((r.step, gi) in judged for gi in range(len(sample.answers))):
            redundant += 1
        else:
            late += 1
    return SampleScore(
        id=sample.id,
        task=sample.task,
        regime=sample.regime,
        video=sample.video,
        score=accuracy * multiplier - penalty,
        accuracy=accuracy,
        multiplier=multiplier,
        premature=premature,
        r_ans=r_ans,
        n_steps=n,
        n_responses=len(responses),
        gold_hits=hits,
        correct_responses=correct,
        premature_responses=premature_n,
        late_responses=late,
        redundant_responses=redundant,
        latencies_s=latencies,
        tokens=[r.tokens for r in responses],
        judge_failures=failures,
    )


def aggregate(scores: Sequence[SampleScore]) -> dict:
    """Mean per task, mean of tasks per regime, overall = mean of the regimes present. x100."""
    by_task: dict[str, list[float]] = {}
    regime_of: dict[str, str] = {}
    for s in scores:
        by_task.setdefault(s.task, []).append(s.score)
        regime_of[s.task] = s.regime
    tasks = {t: 100.0 * float(np.mean(v)) for t, v in sorted(by_task.items())}
    regimes = {}
    for reg in REGIMES:
        vals = [v for t, v in tasks.items() if regime_of[t] == reg]
        if vals:
            regimes[reg] = float(np.mean(vals))
    overall = float(np.mean(list(regimes.values()))) if regimes else 0.0
    return {"overall": overall, "regimes": regimes, "tasks": tasks}


def diagnostics(scores: Sequence[SampleScore], fps_by_id: dict[str, float] | None = None) -> dict:
    n_resp = sum(s.n_responses for s in scores)
    n_gold = sum(len(s.gold_hits) for s in scores)
    correct = sum(s.correct_responses for s in scores)
    minutes = sum(s.n_steps / (fps_by_id or {}).get(s.id, 0.5) for s in scores) / 60.0
    lat = [x for s in scores for x in s.latencies_s]
    toks = [x for s in scores for x in s.tokens]
    recalled = sum(sum(1 for h in s.gold_hits if h >= 0.5) for s in scores)

    def per_min(k):
        return k / minutes if minutes else 0.0

    return {
        "precision": correct / n_resp if n_resp else 0.0,
        "recall": recalled / n_gold if n_gold else 0.0,
        "r_ans": float(np.mean([s.r_ans for s in scores])) if scores else 0.0,
        "responses_per_min": per_min(n_resp),
        "unnecessary_per_min": {
            "premature": per_min(sum(s.premature_responses for s in scores)),
            "late": per_min(sum(s.late_responses for s in scores)),
            "redundant": per_min(sum(s.redundant_responses for s in scores)),
        },
        "premature_samples": sum(s.premature for s in scores),
        "median_latency_s": float(np.median(lat)) if lat else None,
        "tokens_per_response": float(np.mean(toks)) if toks else 0.0,
        "judge_failures": sum(s.judge_failures for s in scores),
        "samples": len(scores),
    }


def clustered_ci(scores: Sequence[SampleScore], n_boot: int = 1000, seed: int = 0) -> dict:
    """95% bootstrap confidence interval of Overall, resampling whole videos (clusters)."""
    videos = sorted({s.video for s in scores})
    if len(videos) < 2:
        return {"overall": None}
    by_video: dict[str, list[SampleScore]] = {}
    for s in scores:
        by_video.setdefault(s.video, []).append(s)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(videos), len(videos))
        sample = [s for i in pick for s in by_video[videos[i]]]
        stats.append(aggregate(sample)["overall"])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return {"overall": [float(lo), float(hi)], "clusters": len(videos), "bootstrap": n_boot}
