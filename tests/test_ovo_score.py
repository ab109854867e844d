"""OVO-Bench's original scoring reproduces the published Qwen2-VL-7B numbers exactly."""

import json

import pytest
from typer.testing import CliRunner

from conftest import OVO, need_shared
from evostreaming.cli import app
from evostreaming.eval.benchmarks.ovo.score import score_mcq, score_predictions, score_rec, score_yes_no


def test_reproduces_published_qwen2vl_7b_numbers(tmp_path):
    preds = need_shared(OVO / "results" / "QWen2VL_7B_")
    ann = need_shared(OVO / "ovo_bench_new.json")
    out = tmp_path / "ovo.json"
    res = CliRunner().invoke(
        app, ["eval", "score-ovo", "--annotations", str(ann), "--predictions", str(preds), "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert round(r["categories"]["realtime"], 2) == 55.98
    assert round(r["categories"]["backward"], 2) == 46.46
    assert round(r["categories"]["forward"], 2) == 48.74
    assert round(r["tasks"]["REC"], 2) == 31.66
    assert round(r["tasks"]["SSR"], 2) == 65.82
    assert round(r["tasks"]["CRR"], 2) == 48.75
    assert round(r["overall"], 2) == 50.39


def test_rules_on_hand_built_rows():
    assert score_mcq("The answer is B.", "B") == 1
    assert score_mcq("C", "B") == 0
    assert score_mcq(None, "B") == 0
    assert score_mcq(["(A)", "B"], "B") == 1  # list responses are joined
    assert score_rec("I count 1 2", 12) == 1  # digits concatenated, as the original scorer does
    assert score_rec("3 times", 3) == 1
    assert score_rec(["2"], 2) == 1
    assert score_yes_no("N", 0) == 1 and score_yes_no("Y", 1) == 1
    assert score_yes_no("Yes, it started.", 1) == 1
    assert score_yes_no("Yes", 0) == 0


def test_category_and_overall_means():
    preds = {
        "backward": [{"task": "EPM", "response": "A", "ground_truth": "A"}],
        "realtime": [
            {"task": "OCR", "response": "A", "ground_truth": "A"},
            {"task": "ACR", "response": "B", "ground_truth": "A"},
        ],
        "forward": [{"task": "REC", "test_info": [{"count": 1, "response": "1"}, {"count": 2, "response": "1"}]}],
    }
    r = score_predictions(preds)
    assert r["categories"] == {"backward": 100.0, "realtime": 50.0, "forward": 50.0}
    assert r["overall"] == pytest.approx((100 + 50 + 50) / 3)


def test_bad_prediction_folder_is_a_clear_error(tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "p.json").write_text("{not json")
    ann = tmp_path / "ann.json"
    ann.write_text("[]")
    res = CliRunner().invoke(app, ["eval", "score-ovo", "--annotations", str(ann), "--predictions", str(preds)])
    assert res.exit_code == 2
    assert "p.json: line 1: not valid JSON" in res.output
