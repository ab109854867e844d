"""Sessions that never touch each other, and a protocol that answers every malformed event with one
error naming the field (the server in-process, FastAPI's TestClient, a tiny Qwen2-VL)."""

import base64
import json
import math
import re
from pathlib import Path

import pytest

from evostreaming.serve import protocol
from evostreaming.serve.protocol import pack_frame
from test_serve import _client, _jpeg, _ws, loaded  # noqa: F401  (the module-scoped model fixture)

FRAMES = 3


def _settle(ws, seqs: set[int]) -> list[dict]:
    """Events until every frame in ``seqs`` got its drop, its silent decision or its reply's end."""
    events, left = [], set(seqs)
    while left:
        ev = ws.receive_json()
        events.append(ev)
        if ev["type"] == "frame.dropped" or ev["type"] == "response.done":
            left.discard(ev["seq"])
        elif ev["type"] == "frame.decision" and ev["action"] == "silent":
            left.discard(ev["seq"])
    return events


def _trace(events: list[dict]) -> list[tuple]:
    """What a session's client saw of its frames: decisions, replies (p_silent rounded: packed vs alone)."""
    out = []
    for ev in events:
        if ev["type"] == "frame.decision":
            out.append(("decision", ev["seq"], ev["action"], round(ev["p_silent"], 5), ev["cache_tokens"]))
        elif ev["type"] == "response.done":
            out.append(("reply", ev["seq"], ev["text"], ev["tokens"]))
        elif ev["type"] in ("frame.dropped", "error"):
            out.append((ev["type"], ev.get("seq"), ev.get("reason", ev.get("code"))))
    return out


SETTINGS = {
    "a": ({"visual_tokens_per_frame": 16}, "Is it red?"),
    "b": (
        {"visual_tokens_per_frame": 64, "system_prompt": "Describe what changes. Otherwise say {marker}."},
        "Any motion?",
    ),
}


def _open(ws, name):
    ws.receive_json()  # session.created
    settings, _ = SETTINGS[name]
    ws.send_json({"type": "session.update", "session": settings})
    assert ws.receive_json()["type"] == "session.updated"


def _frame(ws, name, k):
    if k == 1:
        ws.send_json({"type": "conversation.item.create", "text": SETTINGS[name][1]})
    ws.send_bytes(pack_frame(k, float(k), _jpeg(100 * (name == "b") + k, size=224)))


def test_two_sessions_with_different_budgets_each_equal_the_same_session_alone(loaded, tmp_path):  # noqa: F811
    alone = {}
    for name in SETTINGS:
        with _client(loaded, tmp_path, max_fps=1000.0) as client, _ws(client) as ws:
            _open(ws, name)
            events = []
            for k in range(FRAMES):
                _frame(ws, name, k)
                events += _settle(ws, {k})
            alone[name] = _trace(events)
    with _client(loaded, tmp_path, max_fps=1000.0) as client, _ws(client) as a, _ws(client) as b:
        _open(a, "a")
        _open(b, "b")
        together = {"a": [], "b": []}
        for k in range(FRAMES):
            _frame(a, "a", k)
            _frame(b, "b", k)
            together["a"] += _settle(a, {k})
            together["b"] += _settle(b, {k})
    assert _trace(together["a"]) == alone["a"]
    assert _trace(together["b"]) == alone["b"]
    # the budgets really differ: 16 tokens per frame vs 64 (a leak would give both the same)
    tokens_a = [t[4] for t in alone["a"] if t[0] == "decision"]
    tokens_b = [t[4] for t in alone["b"] if t[0] == "decision"]
    assert tokens_a[1] - tokens_a[0] < tokens_b[1] - tokens_b[0]


def test_a_new_fps_alone_resizes_the_memory_window(loaded, tmp_path):  # noqa: F811
    with _client(loaded, tmp_path, max_fps=1000.0, memory_window_s=30.0) as client, _ws(client) as ws:
        created = ws.receive_json()
        assert created["session"]["memory_window_frames"] == math.ceil(30.0 * created["session"]["fps"])
        ws.send_json({"type": "session.update", "session": {"fps": 2}})
        updated = ws.receive_json()
        assert updated["type"] == "session.updated" and updated["session"]["memory_window_frames"] == 60
        (served,) = client.app.state.sessions
        assert served.session.config.memory.window_frames == 60


MALFORMED = [
    ("{not json", "bad_json", "JSON"),
    ("[1, 2]", "bad_json", "object"),
    ('{"type": "session.frobnicate"}', "unknown_event", "session.frobnicate"),
    ('{"type": "session.update", "session": {"fps": "fast"}}', "bad_setting", "session.fps"),
    ('{"type": "session.update", "session": {"fps": null}}', "bad_setting", "session.fps"),
    ('{"type": "session.update", "session": {"fps": 1e9}}', "bad_setting", "session.fps"),
    ('{"type": "session.update", "session": {"visual_tokens_per_frame": 0}}', "bad_setting", "visual_tokens_per_frame"),
    (
        '{"type": "session.update", "session": {"visual_tokens_per_frame": -5}}',
        "bad_setting",
        "visual_tokens_per_frame",
    ),
    (
        '{"type": "session.update", "session": {"visual_tokens_per_frame": 2.5}}',
        "bad_setting",
        "visual_tokens_per_frame",
    ),
    ('{"type": "session.update", "session": {"system_prompt": 12}}', "bad_setting", "session.system_prompt"),
    ('{"type": "session.update", "session": 7}', "bad_setting", "session"),
    ('{"type": "session.update", "session": {"colour": "red"}}', "bad_setting", "session.colour"),
    ('{"type": "session.update", "session": {"source": {"type": "ftp"}}}', "bad_setting", "session.source"),
    ('{"type": "conversation.item.create", "item": {"content": "hi"}}', "bad_item", "item.content"),
    ('{"type": "conversation.item.create", "text": 5}', "bad_item", "text"),
    ('{"type": "input_frame", "seq": 1, "time": "NaN", "image": "aGk="}', "bad_frame", "time"),
    ('{"type": "input_frame", "seq": -1, "time": 0, "image": "aGk="}', "bad_frame", "seq"),
    ('{"type": "input_frame", "seq": 1, "time": 0}', "bad_frame", "image"),
]


def test_every_malformed_event_gets_one_error_naming_the_field_and_the_session_goes_on(loaded, tmp_path):  # noqa: F811
    with _client(loaded, tmp_path, max_fps=1000.0) as client, _ws(client) as ws:
        ws.receive_json()
        long_prompt = json.dumps({"type": "session.update", "session": {"system_prompt": "x" * 100_000}})
        for text, code, field in [*MALFORMED, (long_prompt, "bad_setting", "system_prompt")]:
            ws.send_text(text)
            ev = ws.receive_json()
            assert ev["type"] == "error" and ev["code"] == code, (text, ev)
            assert field in ev["message"], (text, ev["message"])
        # binary frames whose header or time cannot be used
        ws.send_bytes(pack_frame(0, float("nan"), _jpeg(0)))
        ev = ws.receive_json()
        assert ev["code"] == "bad_frame" and "time" in ev["message"]
        # the session goes on: a good frame, then one that goes back in time, then a JSON frame
        ws.send_bytes(pack_frame(5, 2.0, _jpeg(5)))
        assert any(e["type"] == "frame.decision" for e in _settle(ws, {5}))
        ws.send_bytes(pack_frame(6, 1.0, _jpeg(6)))
        (drop,) = [e for e in _settle(ws, {6}) if e["type"] == "frame.dropped"]
        assert drop["reason"] == "order"
        image = "data:image/jpeg;base64," + base64.b64encode(_jpeg(7)).decode()
        ws.send_json({"type": "input_frame", "seq": 7, "time": 3, "image": image})
        assert any(e["type"] == "frame.decision" for e in _settle(ws, {7}))


def test_a_frame_over_the_pixel_cap_is_dropped_before_decoding(loaded, tmp_path):  # noqa: F811
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3000, 3000)).save(buf, format="PNG")  # compresses to a few KB: only the header tells
    with _client(loaded, tmp_path, max_fps=1000.0, max_frame_pixels=1_000_000) as client, _ws(client) as ws:
        ws.receive_json()
        ws.send_bytes(pack_frame(0, 0.0, buf.getvalue()))
        (drop,) = [e for e in _settle(ws, {0}) if e["type"] == "frame.dropped"]
        assert drop["reason"] == "pixels" and "3000x3000" in drop["message"]
        ws.send_bytes(pack_frame(1, 1.0, _jpeg(1)))
        assert any(e["type"] == "frame.decision" for e in _settle(ws, {1}))


def test_the_docs_protocol_table_matches_the_typed_events():
    """docs/server.md's table names each event and its top-level fields; the models are the truth."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "server.md").read_text()
    rows = re.findall(r"^\| (client|server) → \w+ \| `([a-z_.]+)`[^|]*\|\s*([^|]*?)\s*\|", doc, re.M)
    seen = {"client": set(), "server": set()}
    for side, event, fields in rows:
        models = protocol.CLIENT_EVENTS if side == "client" else protocol.SERVER_EVENTS
        assert event in models, f"docs/server.md lists {side} event {event!r}, which the protocol does not have"
        seen[side].add(event)
        top = {f for f in re.findall(r"`([a-z_]+)[`:(]", re.sub(r"\{[^}]*\}|\([^)]*\)|\[[^]]*\]", "", fields))}
        model_fields = set(models[event].model_fields) - {"type"}
        assert top <= model_fields, f"{event}: the docs name {sorted(top - model_fields)}, not in the model"
        assert model_fields <= top, f"{event}: the docs leave out {sorted(model_fields - top)}"
    assert seen["client"] == set(protocol.CLIENT_EVENTS)
    assert seen["server"] == set(protocol.SERVER_EVENTS)


@pytest.mark.parametrize("key", [None, "wrong"])
def test_a_wrong_key_closes_the_socket_with_1008_after_the_handshake(loaded, tmp_path, key):  # noqa: F811
    from starlette.websockets import WebSocketDisconnect

    with _client(loaded, tmp_path) as client:
        with pytest.raises(WebSocketDisconnect) as exc, _ws(client, key) as ws:
            ws.receive_json()
        assert exc.value.code == 1008
        for route in ("/docs", "/openapi.json", "/redoc"):
            assert client.get(route).status_code == 404  # no API description without the key
        health = client.get("/healthz").json()
        assert health["sessions"] == 0 and health["accepting"] and health["load"] == 0.0


BAD_CHATS = [
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "logprobs": "yes"}, "logprobs"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
    ({"messages": ["hi"]}, "messages.0"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "data:x"}]}]}, "image_url"),
    ([{"role": "user", "content": "hi"}], "JSON object"),
]


def test_chat_completions_refuse_bad_requests_with_400_naming_the_field(loaded, tmp_path):  # noqa: F811
    from test_serve import KEY

    auth = {"Authorization": f"Bearer {KEY}"}
    with _client(loaded, tmp_path) as client:
        for body, field in BAD_CHATS:
            res = client.post("/v1/chat/completions", json=body, headers=auth)
            assert res.status_code == 400, (body, res.status_code, res.text)
            assert field in res.json()["detail"], (body, res.json())


def test_chat_completions_stream_as_server_sent_events_through_the_openai_sdk(loaded, tmp_path):  # noqa: F811
    from openai import OpenAI

    from test_serve import KEY

    with _client(loaded, tmp_path) as client:
        oai = OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=client)
        messages = [{"role": "user", "content": "Say something."}]
        whole = oai.chat.completions.create(model="m", messages=messages, max_tokens=4)
        assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
        assert whole.usage.completion_tokens == 4 and whole.choices[0].finish_reason == "length"
        chunks = list(oai.chat.completions.create(model="m", messages=messages, max_tokens=4, stream=True))
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content  # the same greedy completion, piece by piece
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2  # it did stream
        assert (
            chunks[-1].choices[0].finish_reason == "length"
            and chunks[-1].usage.total_tokens == whole.usage.total_tokens
        )


def test_the_serve_flags_come_from_the_config_fields():
    """Each Limits and ServerConfig field with help is a `serve` flag, with that help and that check."""
    import dataclasses

    from typer.testing import CliRunner

    from evostreaming.cli import app
    from evostreaming.serve.config import Limits, ServerConfig

    text = " ".join(CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "300"}).output.split())
    for cls in (Limits, ServerConfig):
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                flag = (f.metadata.get("decls") or [f.metadata.get("flag", "--" + f.name.replace("_", "-"))])[0]
                assert flag.split("/")[0] in text and f.metadata["help"][:30] in text, f.name
    res = CliRunner().invoke(app, ["serve", "pocket", "--max-sessions", "0"])
    assert res.exit_code == 2 and "--max-sessions must be >= 1" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["serve", "pocket", "--host", "0.0.0.0"], env={"EVOSTREAMING_API_KEY": ""})
    assert res.exit_code == 2 and "--api-key" in res.output
