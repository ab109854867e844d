"""Generation backends: an OpenAI-compatible server gives what the local model gives, with bounded
concurrency and retries."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from conftest import tiny
from evostreaming.evolve.backends import BackendError, LocalBackend, OpenAIBackend, Request
from evostreaming.models import family_names
from evostreaming.models.pocket import pocket_available
from evostreaming.world.generator import generate_scene
from evostreaming.world.scene import render_frames

pytestmark = pytest.mark.skipif(not pocket_available(), reason="pocket weights not committed")


class ServedModel:
    """A minimal OpenAI-compatible chat endpoint in front of a LocalBackend (what vLLM does for a
    real checkpoint): decodes the data-URL images and generates with the local model."""

    def __init__(self, local: LocalBackend, *, pair_up: bool = False, fail_first: int = 0):
        self.local, self.lock = local, threading.Lock()
        self.bodies, self.inflight, self.max_inflight = [], 0, 0
        self.barrier = threading.Barrier(2, timeout=60) if pair_up else None
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    if outer.fail_first > 0:
                        outer.fail_first -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                if outer.barrier:  # two requests must be in flight together to get past here
                    outer.barrier.wait()
                user = body["messages"][-1]["content"]
                frames = [
                    Image.open(io.BytesIO(base64.b64decode(c["image_url"]["url"].split(",", 1)[1])))
                    for c in user
                    if c["type"] == "image_url"
                ]
                prompt = next(c["text"] for c in user if c["type"] == "text")
                with outer.lock:
                    text = outer.local.generate([Request(frames, prompt)], max_new_tokens=body["max_tokens"])[0]
                    outer.inflight -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"choices": [{"message": {"content": text}}]}).encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def local():
    from evostreaming.models.pocket import load_pocket

    model, processor = load_pocket()
    return LocalBackend(model, processor, batch_size=4)


def _requests(n: int) -> list[Request]:
    prompts = ["how many shapes are there now?", "describe the video.", "list the shapes you see now."]
    out = []
    for i in range(n):
        frames = [f for _, f in render_frames(generate_scene(100 + i))][:4]
        out.append(Request(frames, prompts[i % len(prompts)]))
    return out


def test_served_model_answers_like_the_local_one(local):
    reqs = _requests(6)
    server = ServedModel(local)
    try:
        remote = OpenAIBackend(server.url, "pocket", concurrency=3).generate(reqs, max_new_tokens=24)
    finally:
        server.close()
    assert remote == local.generate(reqs, max_new_tokens=24)
    body = server.bodies[0]
    assert body["model"] == "pocket" and body["messages"][0]["role"] == "system"
    assert sum(c["type"] == "image_url" for c in body["messages"][-1]["content"]) == 4


def test_concurrency_is_bounded_and_used(local):
    server = ServedModel(local, pair_up=True)
    try:
        out = OpenAIBackend(server.url, "pocket", concurrency=2).generate(_requests(6), max_new_tokens=4)
    finally:
        server.close()
    assert len(out) == 6 and len(server.bodies) == 6
    assert server.max_inflight == 2  # pairs had to overlap to pass the barrier; never more than 2


def test_transient_errors_are_retried_and_persistent_ones_named(local):
    server = ServedModel(local, fail_first=2)
    try:
        out = OpenAIBackend(server.url, "pocket", retries=2).generate(_requests(1), max_new_tokens=4)
        assert len(out) == 1 and len(server.bodies) == 3
        server.fail_first = 10
        with pytest.raises(BackendError, match="HTTP 503.*/v1/models"):
            OpenAIBackend(server.url, "pocket", retries=1).generate(_requests(1), max_new_tokens=4)
    finally:
        server.close()


@pytest.mark.parametrize("family", family_names())
def test_a_batch_of_prompts_with_different_frame_counts_generates_per_prompt(family):
    """Batched generation equals one request at a time, whatever the frame counts (SmolVLM's processor
    checks its image tokens per prompt, so frames must be grouped per prompt)."""
    tm = tiny(family)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(5)]
    reqs = [Request(frames[:2], "What is it?"), Request(frames[2:], "And now, what changed?")]
    backend = LocalBackend(tm.model, tm.processor, batch_size=2)
    batched = backend.generate(reqs, max_new_tokens=4)
    alone = [backend.generate([r], max_new_tokens=4)[0] for r in reqs]
    assert len(batched) == 2 and batched == alone


@pytest.mark.parametrize("family", ["qwen2_5_vl", "smolvlm"])
def test_a_closed_choice_decodes_only_allowed_answers(family):
    """With ``choices`` the local backend answers with one of them, the one whose first token the model
    ranks highest (checked against one direct forward), and open requests in the same call still decode
    freely."""
    import torch

    tm = tiny(family)
    frames = [np.random.default_rng(1).integers(0, 255, (56, 56, 3), dtype=np.uint8)]
    backend = LocalBackend(tm.model, tm.processor)
    choices = ["yes", "no", "maybe later"]
    req = Request(frames, "Is anything moving? Answer yes or no.", choices)
    prompt = tm.processor.apply_chat_template(backend._messages(req), tokenize=False, add_generation_prompt=True)
    tok = tm.processor.tokenizer
    base = len(tok(prompt, add_special_tokens=False)["input_ids"])
    first = [tok(prompt + c, add_special_tokens=False)["input_ids"][base] for c in choices]
    assert len(set(first)) == 3  # distinct first tokens: the first step decides
    enc = tm.processor(text=[prompt], images=[[Image.fromarray(frames[0])]], return_tensors="pt")
    with torch.no_grad():
        last = tm.model(**enc).logits[0, -1]
    best = choices[int(torch.stack([last[t] for t in first]).argmax())]
    free = Request(frames, "Describe it.")
    got = backend.generate([free, req, free], max_new_tokens=3)
    assert got[1] == best
    assert got[0] == got[2] == backend.generate([free], max_new_tokens=3)[0]
