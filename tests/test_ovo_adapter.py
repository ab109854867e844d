"""OVO-Bench -> RealStreamEval mapping on the real annotation file."""

import pytest

from conftest import OVO, need_shared
from evostreaming.eval.benchmarks.ovo.mapping import OVOMapping, load_ovo


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in load_ovo(need_shared(OVO / "ovo_bench_new.json"))}


def test_all_rows_map_with_regimes(samples):
    assert len(samples) == 1640
    regimes = {}
    for s in samples.values():
        regimes[s.regime] = regimes.get(s.regime, 0) + 1
    assert regimes == {"BT": 297 + 186 + 148, "RTVP": 184 + 178 + 149 + 116 + 109 + 101, "FAR": 82 + 48 + 42}


def test_mcq_question_and_letter_at_realtime(samples):
    s = samples["ovo-0"]  # EPM, realtime 215, gt 2, 4 options
    assert s.regime == "BT" and s.task == "EPM"
    assert s.turns[0].time == 214.0  # last 0.5-fps frame strictly before 215 s
    assert s.answers[0].answer == "C" and s.answers[0].time == 214.0 and s.answers[0].judge == "choice"
    assert "C. a person with blue shirt" in s.turns[0].text
    assert s.duration == 214.0 + 4.0 + 2.0  # tail of 4 s for repeated answers


def test_crr_due_from_clue_time(samples):
    s = samples["ovo-1468"]  # ask 297, clue 308
    assert s.turns[0].time == 296.0  # floor to the step grid
    assert s.answers[0].time == 308.0 and s.answers[0].evidence_start == 308.0
    assert s.answers[0].answer == "She walks past the car." and s.answers[0].judge == "text"
    assert s.duration == 338.0 + 2.0  # last probe + one step


def test_ssr_one_answer_per_step_at_start_time(samples):
    s = samples["ovo-1516"]  # steps start at 25, 31, 107; probes unsorted in the file
    assert [a.time for a in s.answers] == [25.0, 31.0, 107.0]
    assert s.answers[1].answer == "put on the hair extensions"
    assert s.turns[0].time == 0.0 and "put down the hair and comb" in s.turns[0].text


def test_rec_running_count_at_end_times(samples):
    s = samples["ovo-1559"]  # starts 0, 6, 15; ends 5, 13, 18
    assert [(a.time, a.evidence_start, a.answer) for a in s.answers] == [
        (5.0, 0.0, "1"),
        (13.0, 6.0, "2"),
        (18.0, 15.0, "3"),
    ]
    assert all(a.judge == "number" for a in s.answers)


def test_fps_is_configurable(samples):
    one = {s.id: s for s in load_ovo(OVO / "ovo_bench_new.json", mapping=OVOMapping(fps=1.0))}
    assert one["ovo-0"].fps == 1.0 and one["ovo-0"].turns[0].time == 214.0
    assert one["ovo-1468"].turns[0].time == 297.0
