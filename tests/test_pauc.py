"""PAUC (ProactiveVideoQA's metric): the worked examples of ../shared/data/proactivevideoqa/PAUC.md,
computed by hand there, and its two anchors (always silent: 25; right at the start of every span: 100)."""

import pytest

from evostreaming.eval.benchmarks.pauc import (
    GoldTurn,
    Reply,
    drop_late_regressions,
    in_span,
    parse_level,
    pauc,
    score_turn,
)

TURN = GoldTurn("item", "WEB", "What happens?", "A man opens the door.", reply=(10.0, 30.0), related=(10.0, 25.0))


def judge_of(levels: dict[str, int], calls: list | None = None):
    """A judge that grades the cumulative text it is shown by a table (the examples give the levels)."""

    def judge(question, gold, answer):
        if calls is not None:
            calls.append(answer)
        return levels.get(answer)

    return judge


def test_two_replies_rising_to_full_marks():
    replies = [Reply(14.0, "a door"), Reply(20.0, "a man opens it")]
    calls = []
    s = score_turn(replies, TURN, judge_of({"a door": 2, "a door a man opens it": 3}, calls))
    assert calls == ["a door", "a door a man opens it"]  # cumulative, joined by single spaces
    assert s[0.0] == pytest.approx(0.70) and s[0.5] == pytest.approx(0.85) and s[1.0] == pytest.approx(1.00)


def test_no_reply_in_the_span_scores_a_quarter_at_every_omega():
    replies = [Reply(5.0, "too early"), Reply(31.0, "too late")]
    assert score_turn(replies, TURN, judge_of({})) == {0.0: 0.25, 0.5: 0.25, 1.0: 0.25}


def test_a_late_regression_after_the_related_span_is_dropped():
    replies = [Reply(12.0, "yes"), Reply(28.0, "no")]
    s = score_turn(replies, TURN, judge_of({"yes": 3, "yes no": 1}))
    assert s[0.0] == pytest.approx(0.925) and s[0.5] == pytest.approx(0.9625)
    assert drop_late_regressions([(12.0, 2), (28.0, 0)], 25.0) == [(12.0, 2)]
    assert drop_late_regressions([(12.0, 1), (28.0, 1)], 25.0) == [(12.0, 1), (28.0, 1)]  # not lower: kept


def test_a_repeated_text_is_judged_once():
    calls = []
    score_turn([Reply(14.0, "same"), Reply(16.0, "same")], TURN, judge_of({"same": 2}, calls))
    assert calls == ["same"]
    assert [r.time for r in in_span([Reply(16.0, "x"), Reply(14.0, "x")], TURN)] == [14.0]


def test_an_unparsable_judgement_gives_no_point():
    s = score_turn([Reply(14.0, "?")], TURN, judge_of({}))  # the judge returns None
    assert s[0.0] == 0.25
    assert parse_level("3") == 3 and parse_level("Score: 2.") == 2 and parse_level("n/a") is None
    assert parse_level("1.5") is None and parse_level("12") is None


def test_always_silent_is_25_and_right_at_every_span_start_is_100():
    turns = [
        GoldTurn("i1", "WEB", "q", "gold one", (10.0, 30.0), (10.0, 25.0)),
        GoldTurn("i1", "WEB", "q", "gold two", (40.0, 50.0), (35.0, 50.0)),
        GoldTurn("i2", "TV", "q2", "gold three", (0.0, 8.0), (0.0, 6.0)),
    ]
    judge = judge_of({"gold one": 3, "gold two": 3, "gold three": 3})
    silent = pauc([(t, score_turn([], t, judge)) for t in turns])
    assert silent["overall"] == {"0": 25.0, "0.5": 25.0, "1": 25.0}
    assert silent["subsets"]["TV"]["0.5"] == 25.0 and silent["turns"] == 3
    oracle = pauc([(t, score_turn([Reply(t.reply[0], t.content)], t, judge)) for t in turns])
    assert oracle["overall"] == {"0": 100.0, "0.5": 100.0, "1": 100.0}


# -- live: eval run on the shared ProactiveVideoQA items, then eval report --as proactivevideoqa ---------
def _keyword_judge_app():
    """A small OpenAI-compatible judge, deterministic: level 3 when the answer holds every key word (4+
    letters) of the reference answer, else 1. It reads the two from the prompt PAUC's judge sends."""
    import re

    from fastapi import FastAPI

    app = FastAPI()
    app.state.requests = 0

    @app.post("/v1/chat/completions")
    async def complete(body: dict):
        app.state.requests += 1
        prompt = body["messages"][-1]["content"]
        gold = re.search(r"Reference answer: (.*)", prompt)
        answer = re.search(r"Assistant's answer: (.*)", prompt)
        level = "1"
        if gold and answer:
            words = {w for w in re.findall(r"[a-z]+", gold.group(1).lower()) if len(w) >= 4}
            level = "3" if words <= set(re.findall(r"[a-z]+", answer.group(1).lower())) else "1"
        message = {"role": "assistant", "content": level}
        return {
            "id": "j",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "judge"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    return app


@pytest.fixture(scope="module")
def keyword_judge():
    """The judge on 127.0.0.1: the socket is bound and listening before the server thread starts, so a
    client's first request waits in the backlog instead of racing the start."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    app = _keyword_judge_app()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"openai:http://127.0.0.1:{sock.getsockname()[1]}/v1,model=keyword-judge", app
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.mark.slow
def test_pauc_from_saved_runs_through_a_judge_on_loopback(keyword_judge, tmp_path):
    import json

    from typer.testing import CliRunner

    from conftest import SHARED, need_shared
    from evostreaming.cli import app

    data = need_shared(SHARED / "data" / "proactivevideoqa" / "WEB" / "anno.json").parents[1]
    judge, judge_app = keyword_judge
    results = {}
    runs = [("oracle", ["--baseline", "oracle"]), ("silent", ["--baseline", "always-silent"])]
    for name, who in [*runs, ("pocket", ["--model", "pocket"])]:
        out = tmp_path / name
        base = ["eval", "run", "--benchmark", "proactivevideoqa", "--data", str(data), "--output", str(out)]
        res = CliRunner().invoke(app, [*base, *who, "--timelines", "0"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(app, ["eval", "report", str(out), "--as", "proactivevideoqa", "--judge", judge])
        assert res.exit_code == 0, res.output
        results[name] = json.loads((out / "summary.proactivevideoqa.json").read_text())
    assert results["silent"]["overall"] == {"0": 25.0, "0.5": 25.0, "1": 25.0}
    assert results["silent"]["judge_requests"] == 0  # nothing to judge
    oracle = results["oracle"]
    assert oracle["overall"]["1"] == 100.0  # every turn gets its gold text inside its span
    assert 25.0 < oracle["overall"]["0"] < oracle["overall"]["0.5"] < 100.0  # on the 2 s grid, a bit late
    assert oracle["turns"] == 6 and set(oracle["subsets"]) == {"WEB", "TV"}
    assert (
        oracle["judge"] == "openai:http://127.0.0.1:" + judge.split(":")[-1].split("/")[0] + "/v1,model=keyword-judge"
    )
    assert oracle["parameters"]["start_level"] == 0.5 and oracle["judge_failures"] == 0
    pocket = results["pocket"]
    assert all(0.0 <= v <= 100.0 for v in pocket["overall"].values()) and pocket["judge_failures"] == 0
    # a second report asks the judge nothing: every answer is cached in the run folder
    before = judge_app.state.requests
    res = CliRunner().invoke(
        app, ["eval", "report", str(tmp_path / "oracle"), "--as", "proactivevideoqa", "--judge", judge]
    )
    assert res.exit_code == 0 and judge_app.state.requests == before
    again = json.loads((tmp_path / "oracle" / "summary.proactivevideoqa.json").read_text())
    assert again["overall"] == oracle["overall"] and again["judge_requests"] == 0
    # RealStreamEval's own score of the same run is still there, beside it
    assert "overall" in json.loads((tmp_path / "oracle" / "summary.json").read_text())
