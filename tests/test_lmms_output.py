"""Every report also writes lmms-eval's layout: results.json with one task per RealStreamEval task and
samples_<task>.jsonl with one line per sample."""

import json

import pytest

from evostreaming.eval.policies import AlwaysSilent, Oracle
from evostreaming.eval.protocol import run_protocol
from evostreaming.eval.report import write_report
from test_protocol import _bench


@pytest.mark.parametrize(("policy", "value"), [(Oracle(), 100.0), (AlwaysSilent(), 0.0)])
def test_lmms_eval_results_and_samples(tmp_path, policy, value):
    samples = _bench(tmp_path)
    out = tmp_path / "run"
    run_protocol(samples, policy, out)
    summary = write_report(out, timelines=0)
    results = json.loads((out / "lmms_eval" / "results.json").read_text())
    tasks = {"realstreameval_" + s.task.lower() for s in samples}
    assert set(results["results"]) == tasks
    assert all(r["realstreameval,none"] == pytest.approx(value) for r in results["results"].values())
    assert results["realstreameval_overall"] == summary["overall"]
    lines = [
        json.loads(line)
        for task in tasks
        for line in (out / "lmms_eval" / f"samples_{task}.jsonl").read_text().splitlines()
    ]
    assert sorted(x["doc"]["id"] for x in lines) == sorted(s.id for s in samples)
    assert all(set(x) >= {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps"} for x in lines)
