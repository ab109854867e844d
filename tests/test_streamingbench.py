"""StreamingBench on its real question files (../shared): every row loads, a bad row is named, the
oracle scores 100 and always-silent 0 under RealStreamEval, and StreamingBench's own metrics are
computed from the same trajectories."""

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from conftest import SHARED, need_shared
from evostreaming.cli import app
from evostreaming.eval.benchmarks import load_benchmark
from evostreaming.eval.benchmarks.streamingbench import parse_hms, streamingbench_metrics
from evostreaming.eval.policies import AlwaysSilent, Oracle
from evostreaming.eval.protocol import read_trajectories, run_protocol
from evostreaming.eval.report import write_report
from evostreaming.eval.schema import SampleFormatError

SB = SHARED / "data" / "streamingbench"


def test_hms_stamps():
    assert parse_hms("0:00:31") == 31.0 and parse_hms("01:02:03") == 3723.0 and parse_hms("00:10:18") == 618.0
    with pytest.raises(ValueError, match="H:MM:SS"):
        parse_hms("10m18s")


def test_every_real_and_proactive_question_loads():
    real = load_benchmark("streamingbench", need_shared(SB / "questions_real.json"))
    proactive = load_benchmark("streamingbench", need_shared(SB / "questions_proactive_50.json"))
    assert len(real) == 2500 and len(Counter(s.task for s in real)) == 10  # the release: 2,500 over 10 types
    assert len(proactive) >= 50 and {s.task for s in proactive} == {"Proactive Output"}
    first = real[0]  # "time_stamp": "00:00:31", answer "C", options carry their "A." prefixes
    assert first.turns[0].time == 30.0 and first.answers[0].answer == "C"
    assert first.answers[0].options[0].startswith("The individual organized")
    assert first.video.endswith("videos/sample_348_real.mp4") and first.regime == "RTVP"
    p = proactive[0]  # asked at 00:10:18, "Break point" due at 00:10:25
    assert (p.turns[0].time, p.answers[0].time, p.answers[0].evidence_start) == (618.0, 625.0, 623.0)
    assert p.answers[0].answer == "Break point" and p.regime == "FAR"


def test_a_bad_row_names_the_file_entry_question_and_field(tmp_path):
    rows = json.loads(need_shared(SB / "questions_real.json").read_text())[:5]
    rows[3]["questions"][0]["time_stamp"] = "31 seconds"
    bad = tmp_path / "questions_real.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(SampleFormatError, match=r"questions_real.json: entry 3, question 0: field 'time_stamp'"):
        load_benchmark("streamingbench", bad)
    del rows[3]["questions"][0]["answer"]
    rows[3]["questions"][0]["time_stamp"] = "0:00:31"
    bad.write_text(json.dumps(rows))
    with pytest.raises(SampleFormatError, match=r"entry 3, question 0: field 'answer' is missing"):
        load_benchmark("streamingbench", bad)


@pytest.mark.slow
def test_oracle_scores_100_and_silence_0_and_streamingbenchs_own_metrics_follow(tmp_path):
    real = load_benchmark("streamingbench", need_shared(SB / "questions_real.json"))[:60]
    proactive = load_benchmark("streamingbench", need_shared(SB / "questions_proactive_50.json"))
    samples = real + proactive
    run_protocol(samples, Oracle(), tmp_path / "oracle")
    assert write_report(tmp_path / "oracle", timelines=0)["overall"] == pytest.approx(100.0)
    own = streamingbench_metrics(samples, read_trajectories(tmp_path / "oracle"))
    assert own["real_time_accuracy"] == 1.0
    assert own["tasks"]["Proactive Output"]["time_accuracy"] == 1.0
    assert own["tasks"]["Proactive Output"]["answer_accuracy"] == 1.0
    res = CliRunner().invoke(app, ["eval", "report", str(tmp_path / "oracle"), "--as", "streamingbench"])
    assert res.exit_code == 0, res.output
    projected = json.loads((tmp_path / "oracle" / "summary.streamingbench.json").read_text())
    assert projected["real_time_accuracy"] == 1.0 and projected["samples"] == len(samples)
    assert projected["parameters"]["proactive_time_tolerance_s"] == 2.0
    refused = CliRunner().invoke(app, ["eval", "report", str(tmp_path / "oracle"), "--as", "ovo"])
    assert refused.exit_code == 2 and "score-ovo" in refused.output
    # PAUC needs an LLM judge, and ProactiveVideoQA's samples: each refusal says which
    refused = CliRunner().invoke(app, ["eval", "report", str(tmp_path / "oracle"), "--as", "proactivevideoqa"])
    assert refused.exit_code == 2 and "--judge openai:" in " ".join(refused.output.split())
    judge = ["--judge", "openai:http://127.0.0.1:9/v1,model=m"]
    refused = CliRunner().invoke(app, ["eval", "report", str(tmp_path / "oracle"), "--as", "proactivevideoqa", *judge])
    assert refused.exit_code == 2 and "not ProactiveVideoQA" in " ".join(refused.output.split())
    run_protocol(samples, AlwaysSilent(), tmp_path / "silent")
    assert write_report(tmp_path / "silent", timelines=0)["overall"] == 0.0
    silent = streamingbench_metrics(samples, read_trajectories(tmp_path / "silent"))
    assert silent["real_time_accuracy"] == 0.0 and silent["tasks"]["Proactive Output"]["time_correct"] == 0
