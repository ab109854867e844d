"""ProactiveVideoQA on its real samples (../shared): both shipped subsets load, subtitles become user
turns, a bad item is named, and the oracle scores 100 and always-silent 0 under RealStreamEval."""

import json

import pytest

from conftest import SHARED, need_shared
from evostreaming.eval.benchmarks import load_benchmark
from evostreaming.eval.policies import AlwaysSilent, Oracle
from evostreaming.eval.protocol import run_protocol
from evostreaming.eval.report import write_report
from evostreaming.eval.schema import SampleFormatError

PVQA = SHARED / "data" / "proactivevideoqa"


def test_both_subsets_load_with_subtitles_as_user_turns():
    samples = load_benchmark("proactivevideoqa", need_shared(PVQA / "TV" / "anno.json").parents[1])
    assert sorted(s.task for s in samples) == ["TV", "TV", "WEB", "WEB"]
    tv = next(s for s in samples if s.id.endswith("clip_25.mp4%Q1"))
    assert tv.turns[0].text.startswith("Where does House imagine Amber")
    assert [t.time for t in tv.turns][1:] == [0.352, 10.195, 22.307, 25.143]  # the subtitles, at their times
    assert tv.turns[1].text.startswith("Subtitle:")
    web = next(s for s in samples if s.id == "pvqa-WEB-LGgaMq1eZGw.52.mp4")
    spans = [(a.evidence_start, a.time, a.evidence_end, a.answer) for a in web.answers]
    assert spans == [
        (
            0.0,
            0.0,
            4.07,
            "A four-legged creature with a tail and wings, and a character with green skin and strange ears.",
        ),
        (3.1, 3.1, 6.0, "A donkey."),
    ]
    assert all(s.regime == "FAR" for s in samples)
    durations = json.loads((PVQA / "file_durations.json").read_text())
    assert web.duration == pytest.approx(durations["WEB/videos/LGgaMq1eZGw.52.mp4"], abs=1e-3)


def test_a_bad_item_names_the_file_item_and_field(tmp_path):
    items = json.loads(need_shared(PVQA / "WEB" / "anno.json").read_text())
    items[1]["answer"][0]["reply_timespan"] = [5.0, 1.0]
    (tmp_path / "WEB").mkdir()
    (tmp_path / "WEB" / "anno.json").write_text(json.dumps(items))
    with pytest.raises(SampleFormatError, match=r"WEB/anno.json: item 1: field 'answer\[0\].reply_timespan': ends"):
        load_benchmark("proactivevideoqa", tmp_path)


def test_oracle_scores_100_and_silence_0(tmp_path):
    samples = load_benchmark("proactivevideoqa", need_shared(PVQA / "TV" / "anno.json").parents[1])
    run_protocol(samples, Oracle(), tmp_path / "oracle")
    assert write_report(tmp_path / "oracle", timelines=0)["overall"] == pytest.approx(100.0)
    run_protocol(samples, AlwaysSilent(), tmp_path / "silent")
    assert write_report(tmp_path / "silent", timelines=0)["overall"] == 0.0
