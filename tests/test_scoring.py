"""The RealStreamEval formula on hand-built trajectories; expected values computed by hand."""

import pytest

from evostreaming.eval.judges import RuleJudge
from evostreaming.eval.schema import GoldAnswer, Sample, UserTurn
from evostreaming.eval.scoring import (
    SampleScore,
    ScoreConfig,
    StepRecord,
    aggregate,
    far_multiplier,
    score_sample,
)

JUDGE = RuleJudge()


def far_sample(answers, n_question_time=0.0, task="REC"):
    return Sample(
        id="s",
        video="v.mp4",
        fps=0.5,
        task=task,
        regime="FAR",
        turns=[UserTurn(time=n_question_time, text="count")],
        answers=answers,
    )


def traj(n, responses):
    """n steps at 0.5 fps; responses: {step: text}."""
    return [
        StepRecord(k, 2.0 * k, "respond" if k in responses else "silent", responses.get(k, ""), 1) for k in range(n)
    ]


@pytest.mark.parametrize(
    ("r_ans", "m"),
    [(0.0, 1.0), (0.39, 1.0), (0.4, 0.6), (0.5, 0.6), (0.6, 0.4), (0.79, 0.4), (0.8, 0.2), (1.0, 0.2)],
)
def test_far_multiplier_steps(r_ans, m):
    assert far_multiplier(r_ans) == pytest.approx(m)


def test_far_exact_answers_low_rate_score_one():
    s = far_sample(
        [
            GoldAnswer(time=8.0, evidence_start=4.0, answer="1", judge="number"),
            GoldAnswer(time=16.0, evidence_start=12.0, answer="2", judge="number"),
        ]
    )
    sc = score_sample(s, traj(10, {4: "1", 8: "2 times"}), JUDGE)
    # both golds hit (J=1), R_ans = 2/10 < 0.4 -> M = 1, no premature answer
    assert sc.score == pytest.approx(1.0)
    assert sc.r_ans == pytest.approx(0.2)


@pytest.mark.parametrize(("n_resp", "expected"), [(4, 0.6), (6, 0.4), (8, 0.2)])
def test_far_multiplier_applied_at_r_ans_04_06_08(n_resp, expected):
    # 10 steps, gold at step 1 answered correctly; extra wrong answers after it.
    s = far_sample([GoldAnswer(time=2.0, evidence_start=2.0, answer="1", judge="number")])
    responses = {1: "1"} | {k: "7" for k in range(2, 2 + n_resp - 1)}
    sc = score_sample(s, traj(10, responses), JUDGE)
    assert sc.r_ans == pytest.approx(n_resp / 10)
    assert sc.score == pytest.approx(1.0 * expected)


def test_far_premature_penalty_and_delta_window():
    # gold due at 12 s (step 6), evidence from 12 s; default delta 4 s = 2 steps.
    s = far_sample([GoldAnswer(time=12.0, evidence_start=12.0, answer="3", judge="number")])
    early = score_sample(s, traj(20, {1: "0", 8: "3"}), JUDGE)  # step 8 is within +2 steps
    assert early.premature
    assert early.score == pytest.approx(1.0 * 1.0 - 0.1)
    late = score_sample(s, traj(20, {9: "3"}), JUDGE)  # 3 steps late: outside delta
    assert late.score == pytest.approx(0.0)
    narrow = score_sample(s, traj(20, {7: "3"}), JUDGE, ScoreConfig(far_delta_s=0.0))
    assert narrow.score == pytest.approx(0.0)


def test_far_mean_over_golds_uses_the_best_response_in_window():
    s = far_sample(
        [GoldAnswer(time=4.0, answer="1", judge="number"), GoldAnswer(time=20.0, answer="2", judge="number")]
    )
    sc = score_sample(s, traj(20, {2: "5", 3: "1"}), JUDGE)  # only gold 1 found (best of 0 and 1)
    assert sc.gold_hits == [1.0, 0.0]
    assert sc.score == pytest.approx(0.5)


def rt_sample(regime="RTVP"):
    return Sample(
        id="r",
        video="v.mp4",
        fps=0.5,
        task="OCR",
        regime=regime,
        turns=[UserTurn(time=4.0, text="Q? A. x B. y")],
        answers=[GoldAnswer(time=4.0, answer="B", judge="choice", options=["x", "y"])],
    )


def test_realtime_delta_zero_and_repeat_halving():
    assert score_sample(rt_sample(), traj(5, {2: "B"}), JUDGE).score == pytest.approx(1.0)
    assert score_sample(rt_sample(), traj(5, {3: "B"}), JUDGE).score == pytest.approx(0.0)  # one step late
    assert score_sample(rt_sample("BT"), traj(5, {2: "B", 4: "B"}), JUDGE).score == pytest.approx(0.5)
    # answering before the question is not penalized in RTVP/BT, but it counts as a response
    assert score_sample(rt_sample(), traj(5, {0: "A", 2: "B"}), JUDGE).score == pytest.approx(0.5)


def _ss(task, regime, score, video="v"):
    return SampleScore(
        id=task + str(score),
        task=task,
        regime=regime,
        video=video,
        score=score,
        accuracy=score,
        multiplier=1,
        premature=False,
        r_ans=0,
        n_steps=1,
        n_responses=0,
    )


def test_aggregation_task_then_regime_then_overall():
    scores = [
        _ss("OCR", "RTVP", 1.0),
        _ss("OCR", "RTVP", 0.0),
        _ss("ACR", "RTVP", 1.0),
        _ss("EPM", "BT", 0.25),
        _ss("REC", "FAR", 0.4),
        _ss("SSR", "FAR", 0.0),
    ]
    agg = aggregate(scores)
    assert agg["tasks"] == pytest.approx({"ACR": 100.0, "EPM": 25.0, "OCR": 50.0, "REC": 40.0, "SSR": 0.0})
    assert agg["regimes"] == pytest.approx({"RTVP": 75.0, "BT": 25.0, "FAR": 20.0})
    assert agg["overall"] == pytest.approx(40.0)
