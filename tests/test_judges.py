"""Judges: rules, embeddings (offline MiniLM), and an LLM judge over a real local HTTP server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from evostreaming.eval.judges import RuleJudge, make_judge
from evostreaming.eval.judges.embedding import EmbeddingJudge
from evostreaming.eval.judges.llm import OpenAIJudge
from evostreaming.eval.schema import GoldAnswer

rule = RuleJudge()


@pytest.mark.parametrize(
    ("response", "gold", "options", "expected"),
    [
        ("B", "B", None, 1.0),
        ("(B) the red one", "B", None, 1.0),
        ("The answer is C.", "B", None, 0.0),
        ("A or B", "B", None, 0.0),
        ("red car", "B", ["blue car", "red car"], 1.0),
    ],
)
def test_rule_choice(response, gold, options, expected):
    assert rule(response, GoldAnswer(time=0, answer=gold, judge="choice", options=options)) == expected


def test_rule_number_yesno_text():
    num = GoldAnswer(time=0, answer="3", judge="number")
    assert rule("It has been done 3 times.", num) == 1.0
    assert rule("three so far", num) == 1.0
    assert rule("4", num) == 0.0
    yes = GoldAnswer(time=0, answer="Yes", judge="yesno")
    assert rule("Yes, it started.", yes) == 1.0 and rule("No.", yes) == 0.0
    text = GoldAnswer(time=0, answer="tear out the foil", judge="text")
    assert rule("Now: tear out the foil!", text) == 1.0
    assert rule("open the bottle", text) == 0.0


@pytest.fixture(scope="module")
def embed():
    return EmbeddingJudge()


def test_embedding_judge_orders_paraphrase_above_unrelated(embed):
    gold = GoldAnswer(time=0, answer="She walks past the car.", judge="text")
    para = embed("The woman walks by the car without stopping.", gold)
    unrelated = embed("A dog is sleeping on the sofa.", gold)
    # calibrated as P(correct): a paraphrase is more likely right than not, an unrelated text is not
    assert 0.0 <= unrelated < 0.1 < 0.5 < para <= 1.0
    assert embed("", gold) == 0.0
    # non-text kinds use the rules
    assert embed("B", GoldAnswer(time=0, answer="B", judge="choice")) == 1.0


class _Server:
    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                status, content = outer.replies.pop(0) if outer.replies else (500, "")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if status == 200:
                    msg = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                    self.wfile.write(json.dumps(msg).encode())

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()


def test_openai_judge_retries_then_caches(tmp_path):
    server = _Server([(500, ""), (503, ""), (200, '{"score": 0.8}')])
    try:
        judge = OpenAIJudge(server.url, "judge-model", cache_dir=tmp_path, retries=3)
        gold = GoldAnswer(time=0, answer="the red cup", judge="text")
        assert judge("a red cup", gold) == pytest.approx(0.8)
        assert len(server.requests) == 3
        path, body = server.requests[-1]
        assert path == "/v1/chat/completions" and body["model"] == "judge-model" and body["temperature"] == 0
        # second call: served from the on-disk cache, no request
        again = OpenAIJudge(server.url, "judge-model", cache_dir=tmp_path, retries=0)
        assert again("a red cup", gold) == pytest.approx(0.8)
        assert len(server.requests) == 3
    finally:
        server.close()


def test_openai_judge_failure_is_recorded_not_scored(tmp_path):
    server = _Server([(500, ""), (500, ""), (200, "I cannot grade this")])
    try:
        judge = OpenAIJudge(server.url, "m", cache_dir=tmp_path, retries=2)
        assert judge("x", GoldAnswer(time=0, answer="y", judge="text")) is None
        assert len(judge.failures) == 1 and "unparseable" in judge.failures[0]
        assert not list(tmp_path.glob("*.json"))  # failures are not cached
    finally:
        server.close()


def test_make_judge_specs():
    assert isinstance(make_judge("rule"), RuleJudge)
    j = make_judge("openai:http://localhost:9/v1,model=qwen")
    assert isinstance(j, OpenAIJudge) and j.model == "qwen"
    with pytest.raises(ValueError, match="model=NAME"):
        make_judge("openai:http://localhost:9/v1")
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("gpt")
