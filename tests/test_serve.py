"""The realtime server in-process (FastAPI's TestClient): auth on every /v1 route, limits that drop or
refuse with a reason, one decision or drop per frame, and two sessions that never see each other."""

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from evostreaming.models import load_model
from evostreaming.serve.app import create_app
from evostreaming.serve.config import Limits, ServerConfig
from evostreaming.serve.protocol import AUTH_PREFIX, PROTOCOL, pack_frame

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny:qwen2_vl", dtype="float32", device="cpu")


def _client(loaded, tmp_path, **limits) -> TestClient:
    cfg = ServerConfig(api_key=KEY, upload_dir=tmp_path / "uploads", limits=Limits(**limits), max_new_tokens=3)
    return TestClient(create_app(loaded, cfg))


def _jpeg(k: int, size: int = 56) -> bytes:
    rng = np.random.default_rng(k)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _ws(client, key=KEY):
    protocols = [PROTOCOL] + ([AUTH_PREFIX + key] if key else [])
    return client.websocket_connect("/v1/realtime", subprotocols=protocols)


def _until(ws, *, frames: int) -> list[dict]:
    """Read events until every one of ``frames`` frames got its decision or drop (and replies finished)."""
    events, settled, open_replies = [], set(), set()
    while len(settled) < frames or open_replies:
        ev = ws.receive_json()
        events.append(ev)
        if ev["type"] in ("frame.decision", "frame.dropped"):
            settled.add(ev["seq"])
        if ev["type"] == "response.created":
            open_replies.add(ev["response_id"])
        if ev["type"] == "response.done":
            open_replies.discard(ev["response_id"])
    return events


def test_every_v1_route_refuses_a_missing_or_wrong_key(loaded, tmp_path):
    with _client(loaded, tmp_path) as client:
        assert client.get("/healthz").status_code == 200  # health and the page are public
        assert client.get("/").status_code == 200 and "evostreaming" in client.get("/").text
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert client.get("/v1/models", headers=headers).status_code == 401
            assert client.post("/v1/uploads", content=b"x", headers=headers).status_code == 401
            chat = {"messages": [{"role": "user", "content": "hi"}]}
            assert client.post("/v1/chat/completions", json=chat, headers=headers).status_code == 401
        ok = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "tiny:qwen2_vl"
        for key in (None, "wrong"):
            with pytest.raises(WebSocketDisconnect) as exc, _ws(client, key) as ws:
                ws.receive_json()
            assert exc.value.code == 1008


def test_a_non_loopback_address_needs_a_key():
    with pytest.raises(ValueError, match="--api-key"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", api_key="k").host == "0.0.0.0"


def test_one_decision_per_frame_and_the_question_is_bound_to_the_next_frame(loaded, tmp_path):
    with _client(loaded, tmp_path, max_fps=1000.0) as client, _ws(client) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created" and created["protocol"] == PROTOCOL
        ws.send_bytes(pack_frame(0, 0.0, _jpeg(0)))
        ws.send_json(
            {"type": "conversation.item.create", "item": {"content": [{"type": "input_text", "text": "Red?"}]}}
        )
        ws.send_bytes(pack_frame(1, 2.0, _jpeg(1)))
        events = _until(ws, frames=2)
        settled = [e["seq"] for e in events if e["type"] in ("frame.decision", "frame.dropped")]
        assert sorted(settled) == [0, 1]  # exactly one decision or drop per frame
        decisions = {e["seq"]: e for e in events if e["type"] == "frame.decision"}
        if 1 in decisions:  # frame 1 was not superseded: it carries the question
            assert decisions[1]["question"] == "Red?"
            assert decisions.get(0, {}).get("question") is None
        for e in decisions.values():
            assert e["action"] in ("silent", "respond") and 0.0 <= e["p_silent"] <= 1.0 and e["cache_tokens"] > 0
        ws.send_json({"type": "session.close"})
        while (last := ws.receive_json())["type"] != "session.stats":
            pass
        assert last["decisions"] + sum(last["dropped"].values()) == 2 and last["questions"] == 1


def test_oversize_and_undecodable_frames_are_dropped_with_a_reason(loaded, tmp_path):
    with _client(loaded, tmp_path, max_frame_bytes=3000, max_fps=1000.0) as client, _ws(client) as ws:
        ws.receive_json()
        ws.send_bytes(pack_frame(0, 0.0, _jpeg(0, size=300)))  # too many bytes
        ws.send_bytes(pack_frame(1, 0.5, b"not an image"))
        ws.send_bytes(b"garbage without a header")
        events = _until(ws, frames=2)
        drops = {e["seq"]: e["reason"] for e in events if e["type"] == "frame.dropped"}
        assert drops == {0: "size", 1: "decode"}
        # frames are decoded off the event loop, so the header error may come before the decode drop
        err = next((e for e in events if e["type"] == "error"), None) or ws.receive_json()
        assert err["type"] == "error" and err["code"] == "bad_frame"


def test_a_flood_is_dropped_for_rate(loaded, tmp_path):
    with _client(loaded, tmp_path, max_fps=0.001) as client, _ws(client) as ws:  # one frame per 1000 s
        ws.receive_json()
        for k in range(4):
            ws.send_bytes(pack_frame(k, 0.1 * k, _jpeg(k)))
        events = _until(ws, frames=4)
        # a token bucket with two frames of slack (jitter), then the limit
        assert [e["seq"] for e in events if e.get("reason") == "rate"] == [2, 3]
        # the two admitted: decided, or the older superseded by the newer while the worker was busy
        admitted = [e["seq"] for e in events if e["type"] == "frame.decision" or e.get("reason") == "superseded"]
        assert sorted(admitted) == [0, 1]


def test_beyond_the_session_cap_a_new_session_is_refused_and_the_others_go_on(loaded, tmp_path):
    with _client(loaded, tmp_path, max_sessions=1, max_fps=1000.0) as client, _ws(client) as first:
        first.receive_json()
        with _ws(client) as second:
            refusal = second.receive_json()
            assert refusal["code"] == "server_full"
            with pytest.raises(WebSocketDisconnect) as exc:
                second.receive_json()
            assert exc.value.code == 1013
        first.send_bytes(pack_frame(0, 0.0, _jpeg(0)))
        assert any(e["type"] == "frame.decision" for e in _until(first, frames=1))


def test_two_sessions_never_see_each_others_frames_or_questions(loaded, tmp_path):
    with _client(loaded, tmp_path, max_fps=1000.0) as client, _ws(client) as a, _ws(client) as b:
        ida, idb = a.receive_json()["session"]["id"], b.receive_json()["session"]["id"]
        assert ida != idb
        a.send_json({"type": "conversation.item.create", "text": "question for A"})
        b.send_json({"type": "conversation.item.create", "text": "question for B"})
        a.send_bytes(pack_frame(100, 0.0, _jpeg(1)))
        b.send_bytes(pack_frame(200, 0.0, _jpeg(2)))
        ea, eb = _until(a, frames=1), _until(b, frames=1)
        text_a, text_b = json.dumps(ea), json.dumps(eb)
        assert "question for A" in text_a and "question for B" not in text_a
        assert "question for B" in text_b and "question for A" not in text_b
        assert {e["seq"] for e in ea if "seq" in e} == {100} and {e["seq"] for e in eb if "seq" in e} == {200}


def test_uploads_are_capped_and_urls_need_an_allowed_host(loaded, tmp_path):
    auth = {"Authorization": f"Bearer {KEY}"}
    with _client(loaded, tmp_path, max_upload_bytes=1000) as client:
        assert client.post("/v1/uploads", content=b"x" * 2000, headers=auth).status_code == 413
        ok = client.post("/v1/uploads", content=b"x" * 10, headers=auth)
        assert ok.status_code == 200 and ok.json()["bytes"] == 10
        with _ws(client) as ws:
            ws.receive_json()
            ws.send_json(
                {"type": "session.update", "session": {"source": {"type": "url", "url": "rtsp://10.0.0.5/cam"}}}
            )
            err = ws.receive_json()
            assert err["code"] == "url_not_allowed" and "10.0.0.5" in err["message"]
