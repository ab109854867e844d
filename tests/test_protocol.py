"""The RealStreamEval runner: causal delivery, baselines, resume after a crash, reports."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import OVO, need_shared
from evostreaming.cli import app
from evostreaming.eval.policies import AlwaysSilent, Oracle, Policy, PolicyStep
from evostreaming.eval.protocol import read_trajectories, run_protocol, run_sample
from evostreaming.eval.report import write_report
from evostreaming.eval.schema import GoldAnswer, Sample, UserTurn, write_samples
from evostreaming.video.writer import write_mp4

runner = CliRunner()


def _bench(tmp_path, n=3, seconds=10):
    samples = []
    for i in range(n):
        clip = write_mp4(
            (np.full((32, 32, 3), 10 * k, np.uint8) for k in range(seconds * 2)),
            tmp_path / "videos" / f"c{i}.mp4",
            fps=2,
        )
        samples.append(
            Sample(
                id=f"s{i}",
                video=str(clip),
                task=["OCR", "EPM", "REC"][i % 3],
                regime=["RTVP", "BT", "FAR"][i % 3],
                turns=[UserTurn(time=2.0 * i, text=f"question {i}")],
                answers=[GoldAnswer(time=2.0 * i + 2, evidence_start=2.0 * i + 2, answer=str(i + 1), judge="number")],
            )
        )
    write_samples(samples, tmp_path / "samples.jsonl")
    return samples


class Recorder(Policy):
    name = "recorder"

    def __init__(self, crash_on=None):
        self.seen, self.crash_on, self.calls = [], crash_on, 0

    def reset(self, sample):
        self.calls += 1
        if sample.id == self.crash_on:
            raise KeyboardInterrupt

    def step(self, k, time, frame, user_text):
        self.seen.append((k, time, frame is not None, user_text))
        return PolicyStep("silent")


def test_user_turns_arrive_causally_with_frames(tmp_path):
    sample = _bench(tmp_path, n=2)[1]  # question at 2 s
    pol = Recorder()
    row = run_sample(pol, sample)
    assert [s["time"] for s in row["steps"]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [u for *_, u in pol.seen] == [None, "question 1", None, None, None]
    assert all(has_frame for _, _, has_frame, _ in pol.seen)


def test_baselines_oracle_scores_100_and_silent_0(tmp_path):
    samples = _bench(tmp_path)
    run_protocol(samples, Oracle(), tmp_path / "oracle")
    assert write_report(tmp_path / "oracle")["overall"] == pytest.approx(100.0)
    run_protocol(samples, AlwaysSilent(), tmp_path / "silent")
    summary = write_report(tmp_path / "silent")
    assert summary["overall"] == 0.0 and summary["diagnostics"]["r_ans"] == 0.0


def test_killed_run_keeps_finished_samples_and_resumes(tmp_path):
    samples = _bench(tmp_path)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_protocol(samples, Recorder(crash_on="s1"), out)
    assert [r["id"] for r in read_trajectories(out)] == ["s0"]
    # a crash mid-write leaves a partial line: it is ignored and that sample runs again
    with open(out / "trajectories.jsonl", "a") as f:
        f.write('{"id": "s1", "steps": [')
    again = Recorder()
    rows = run_protocol(samples, again, out)
    assert again.calls == 2  # s0 was not redone
    assert sorted(r["id"] for r in rows) == ["s0", "s1", "s2"]


def test_report_cli_rescoring_writes_summary_table_and_timelines(tmp_path):
    samples = _bench(tmp_path)
    out = tmp_path / "oracle"
    run_protocol(samples, Oracle(), out)
    res = runner.invoke(app, ["eval", "report", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"overall", "regimes", "tasks", "diagnostics"}
    assert set(summary["regimes"]) == {"RTVP", "BT", "FAR"}
    assert summary["diagnostics"]["precision"] == 1.0 and summary["diagnostics"]["recall"] == 1.0
    assert "| **Overall** (all 3 samples, failed = 0) | **100.00**" in (out / "report.md").read_text()
    assert sorted(p.name for p in (out / "timelines").glob("*.png")) == ["s0.png", "s1.png", "s2.png"]


def test_eval_run_cli_on_native_jsonl(tmp_path):
    _bench(tmp_path)
    res = runner.invoke(
        app,
        [
            "eval",
            "run",
            "--benchmark",
            "jsonl",
            "--data",
            str(tmp_path / "samples.jsonl"),
            "--baseline",
            "oracle",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["overall"] == pytest.approx(100.0)


def test_eval_run_needs_exactly_one_policy(tmp_path):
    _bench(tmp_path)
    res = runner.invoke(app, ["eval", "run", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and "exactly one of --model, --baseline or --policy" in res.output


@pytest.mark.parametrize(("baseline", "overall"), [("oracle", 100.0), ("always-silent", 0.0)])
def test_baselines_on_the_23_real_sample_clips(tmp_path, baseline, overall):
    data = need_shared(OVO / "sample" / "ovo_bench_sample.json")
    res = runner.invoke(
        app,
        [
            "eval",
            "run",
            "--benchmark",
            "ovo",
            "--data",
            str(data),
            "--baseline",
            baseline,
            "--output",
            str(tmp_path),
            "--timelines",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overall"] == pytest.approx(overall)
    assert summary["diagnostics"]["samples"] == 23


@pytest.mark.slow
def test_tiny_model_end_to_end_on_the_23_real_sample_clips(tmp_path):
    data = need_shared(OVO / "sample" / "ovo_bench_sample.json")
    res = runner.invoke(
        app,
        [
            "eval",
            "run",
            "--benchmark",
            "ovo",
            "--data",
            str(data),
            "--model",
            "tiny:qwen2_vl",
            "--output",
            str(tmp_path),
            "--max-new-tokens",
            "3",
            "--timelines",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = read_trajectories(tmp_path)
    assert len(rows) == 23 and not any(r["error"] for r in rows)
    # every step of every real clip was decided by the model, with its latency recorded
    assert all(s["action"] in ("silent", "respond") and s["latency_s"] > 0 for r in rows for s in r["steps"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diagnostics"]["samples"] == 23
