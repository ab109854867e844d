"""EvoStreaming stages on a tiny real model: formats, filtering, resume, and a LoRA step that
changes the silence behaviour."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import tiny
from evostreaming.cli import app
from evostreaming.evolve.backends import LocalBackend
from evostreaming.evolve.pool import PoolVideo, load_frames, world_pool
from evostreaming.evolve.prompts import load_prompts
from evostreaming.evolve.stages import (
    StageContext,
    balance,
    clean_question,
    parse_task_type,
    parse_yes_no,
    plan_rollout,
    read_jsonl,
    stage_relevance,
    stage_rollout,
    stage_standardize,
    stage_taxonomy,
)
from evostreaming.models.loading import LoadedModel
from evostreaming.models.pocket import pocket_available
from evostreaming.stream.conversation import Turn, render_conversation
from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT, SessionConfig, StreamingSession
from evostreaming.train.lora import LoraTrainConfig, encode_conversation, train_lora

TYPES = load_prompts().task_types


def _ctx(tmp_path, family="qwen2_5_vl"):
    tm = tiny(family)
    return StageContext(
        LocalBackend(tm.model, tm.processor, batch_size=4), load_prompts(), tmp_path, 1, f"tiny:{family}", chunk=4
    )


def test_filters_and_parsers():
    assert clean_question("what color is the circle now?") == "what color is the circle now?"
    assert clean_question("tell me when a square appears.\nmore text") == "tell me when a square appears."
    assert clean_question("") is None and clean_question("circle") is None and clean_question("a b c") is None
    assert clean_question("x " * 150 + "?") is None
    assert parse_task_type("temporal aggregation", TYPES) == "temporal aggregation"
    assert parse_task_type("It is memory-dependent.", TYPES) == "memory-dependent"
    assert parse_task_type("banana", TYPES) is None
    assert parse_yes_no("Yes.") is True and parse_yes_no("no") is False and parse_yes_no("maybe") is None


@pytest.mark.parametrize(
    ("relevance", "ask", "expected"),
    [
        ([0, 0, 1, 0, 1, 0], 0, [2, 4]),  # asked before the evidence: wait for it
        ([0, 1, 0, 0, 1, 0], 3, [3, 4]),  # evidence already in the past: answer at once, then at new evidence
        ([0, 0, 0, 0], 1, []),  # never relevant: silent throughout
        ([1, 1, 1], 0, [0, 1, 2]),
    ],
)
def test_rollout_plan(relevance, ask, expected):
    assert plan_rollout(relevance, ask) == expected


def test_balance_takes_equal_numbers_per_type():
    rows = [{"video": f"v{i}", "task_type": TYPES[i % 3]} for i in range(30)]
    out = balance(rows, TYPES, per_type=100, seed=0)
    assert len(out) == 30 and {r["task_type"] for r in out} == set(TYPES[:3])
    out = balance(rows, TYPES, per_type=4, seed=0)
    assert [sum(r["task_type"] == t for r in out) for t in TYPES[:3]] == [4, 4, 4]


def test_taxonomy_stage_records_provenance_and_resumes(tmp_path):
    ctx = _ctx(tmp_path)
    pool = world_pool(0, 6)
    rows = stage_taxonomy(ctx, pool)
    assert [r["video"] for r in rows] == [v.id for v in pool]
    assert all(r["model"] == "tiny:qwen2_5_vl" and r["round"] == 1 and r["prompt_version"] for r in rows)
    assert all(r["task_type"] is None or r["task_type"] in TYPES for r in rows)  # random weights: mostly None
    # a crash mid-line: the cut line is dropped, that video redone, finished ones kept
    path = tmp_path / "taxonomy.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    rows = stage_taxonomy(ctx, pool)
    assert sorted(r["video"] for r in rows) == sorted(v.id for v in pool)
    report = json.loads((tmp_path / "stage_report.json").read_text())
    assert report["taxonomy"]["videos"] == 6


def test_relevance_rollout_and_standardize_formats(tmp_path):
    ctx = _ctx(tmp_path)
    pool = world_pool(1, 2)
    videos = {v.id: v for v in pool}
    questions = [{"video": v.id, "questions": ["tell me each change as it happens."]} for v in pool]
    rel = stage_relevance(ctx, questions, videos)
    n_frames = [len(v.frames()) for v in pool]
    assert [len(r["relevance"]) for r in rel] == n_frames
    assert all(set(r["relevance"]) <= {0, 1} for r in rel)
    # roll out from hand-set relevance: silent exactly where nothing is relevant
    rel = [{**r, "relevance": [int(k in (2, 5)) for k in range(len(r["relevance"]))]} for r in rel]
    rolls = stage_rollout(ctx, rel, videos, n_samples=10, silence_marker="<silent>")
    for roll in rolls:
        ask = roll["ask_step"]
        spoken = [s["step"] for s in roll["steps"] if s["reply"] != "<silent>"]
        assert set(spoken) <= {k for k in (2, 5) if k >= ask} | ({ask} if ask >= 2 else set())
        assert [s["step"] for s in roll["steps"] if s["user_text"]] == [ask]
    train_file = stage_standardize(ctx, rolls, DEFAULT_SYSTEM_PROMPT, "<silent>")
    conv = [json.loads(line) for line in train_file.read_text().splitlines()]
    assert len(conv) == 2 and conv[0]["marker"] == "<silent>" and len(conv[0]["turns"]) == n_frames[0]


def test_random_relevance_ablation_keeps_the_rate(tmp_path):
    ctx = _ctx(tmp_path)
    pool = world_pool(2, 3)
    rel = [
        {
            "video": v.id,
            "question": "tell me each change as it happens.",
            "relevance": [1 if k % 4 == 0 else 0 for k in range(len(v.frames()))],
        }
        for v in pool
    ]
    rolls = stage_rollout(ctx, rel, {v.id: v for v in pool}, 10, "<silent>", random_relevance=True)
    assert all(r["random_relevance"] for r in rolls)
    assert len(read_jsonl(tmp_path / "rollouts.jsonl")) == 3


@pytest.mark.parametrize("family", ["qwen2_5_vl", "smolvlm", "internvl"])
def test_training_conversations_are_the_tokens_the_session_feeds(family):
    tm = tiny(family)
    frames = PoolVideo("world:123").frames()[:4]
    replies = ["<silent>", "square turns red", "<silent>", "<silent>"]
    turns = [
        Turn(f, "tell me each change as it happens." if k == 0 else None, r)
        for k, (f, r) in enumerate(zip(frames, replies, strict=True))
    ]
    s = StreamingSession(tm.model, tm.processor, keep_inputs=True)
    for t in turns:
        s.push_frame(t.frame, t.user_text)
        s.append_reply(t.reply)
    s.sync()
    ids, _ = s.cached_inputs()
    enc = render_conversation(
        s.adapter, tm.processor, DEFAULT_SYSTEM_PROMPT, turns, "<silent>", s.config.visual_tokens_per_frame
    )
    assert torch.equal(ids, enc["input_ids"])
    trained = tm.processor.tokenizer.decode(enc["input_ids"][enc["labels"] != -100])
    assert trained.count("<silent>") == 3 and "square turns red" in trained


def test_silent_keep_drops_the_loss_on_silent_steps_only():
    from evostreaming.models import adapter_for
    from evostreaming.train.lora import trained_turns

    tm = tiny("qwen2_5_vl")
    replies = ["<silent>"] * 4 + ["square turns red"] + ["<silent>"] * 5
    row = {
        "video": "world:3",
        "question": "tell me each change as it happens.",
        "system": DEFAULT_SYSTEM_PROMPT,
        "marker": "<silent>",
        "turns": [{"user_text": None, "reply": r} for r in replies],
    }
    assert trained_turns(row, 1.0) == [True] * 10
    assert trained_turns(row, 0.0) == [r != "<silent>" for r in replies]
    half = trained_turns(row, 0.5)
    assert half == trained_turns(row, 0.5) and half[4] and 0 < sum(half[:4] + half[5:]) < 9  # stable, partial
    tok = tm.processor.tokenizer
    for keep, n_silent in ((1.0, 9), (0.0, 0), (0.5, sum(half) - 1)):
        enc = encode_conversation(row, adapter_for(tm.model), tm.processor, tm.model, load_frames, silent_keep=keep)
        trained = tok.decode(enc["labels"][0][enc["labels"][0] != -100])
        assert trained.count("<silent>") == n_silent and "square turns red" in trained


def _silence(model, processor, adapter, frames) -> tuple[float, float]:
    """(mean P(marker), fraction of steps the greedy rule keeps silent) over a stream."""
    s = StreamingSession(model, processor, adapter, SessionConfig())
    probs, silent = [], []
    for f in frames:
        s.push_frame(f)
        d = s.decide()
        probs.append(d.silence_prob)
        silent.append(d.silent)
        if not d.silent:
            s.generate_reply()
        s.sync()
    return float(np.mean(probs)), float(np.mean(silent))


@pytest.mark.skipif(not pocket_available(), reason="pocket weights not committed yet")
def test_a_lora_step_changes_the_silence_behaviour(tmp_path):
    # The pocket model (trained, never shown the silence marker): LoRA on silent turns teaches it to
    # stay silent. (A random-weight tiny model cannot show this: its frozen random lm_head and final
    # norm bound the logits, so no adapter on the inner layers can make one token likely.)
    from peft import PeftModel

    from evostreaming.models import adapter_for
    from evostreaming.models.pocket import load_pocket

    model, processor = load_pocket()
    adapter = adapter_for(model)
    video = "world:77"
    frames = PoolVideo(video).frames()[:5]
    data = tmp_path / "train.jsonl"
    row = {
        "video": video,
        "fps": 0.5,
        "system": DEFAULT_SYSTEM_PROMPT,
        "marker": "<silent>",
        "turns": [{"user_text": None, "reply": "<silent>"} for _ in range(5)],
    }
    data.write_text("\n".join(json.dumps(row) for _ in range(8)) + "\n")
    p_before, silent_before = _silence(model, processor, adapter, frames)
    loaded = LoadedModel(model, processor, adapter, "pocket")
    cfg = LoraTrainConfig(lr=1e-2, batch_size=2, epochs=16, dropout=0.0, warmup_ratio=0.0)
    out = train_lora("pocket", data, tmp_path / "lora", cfg, loaded=loaded, load_frames=load_frames)
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    cfg_json = json.loads((out / "adapter_config.json").read_text())
    assert cfg_json["r"] == 8 and cfg_json["lora_alpha"] == 32
    tuned = PeftModel.from_pretrained(load_pocket()[0], out).merge_and_unload().eval()
    p_after, silent_after = _silence(tuned, processor, adapter, frames)
    assert silent_before == 0.0 and silent_after >= 0.8
    assert p_after > 100 * p_before  # the one-token marker: from ~1e-4 to ~1e-1
    # of the output head, only the marker's row is trained (PEFT trainable tokens)
    marker_id = processor.tokenizer.convert_tokens_to_ids("<silent>")
    delta = (tuned.lm_head.weight - load_pocket()[0].lm_head.weight).abs().sum(dim=1)
    assert delta.nonzero().flatten().tolist() == [marker_id]
    # the vision tower is untouched by LoRA
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and not any("visual" in k for k in weights)


@pytest.mark.skipif(not pocket_available(), reason="pocket weights not committed yet")
def test_marker_rows_are_trained_only_for_a_one_token_marker():
    from evostreaming.models.pocket import load_pocket
    from evostreaming.train.lora import marker_token_rows

    model, processor = load_pocket()
    marker_id = processor.tokenizer.convert_tokens_to_ids("<silent>")
    # untied pocket: the input embedding row and the output head row
    assert marker_token_rows(model, processor, "<silent>") == {"embed_tokens": [marker_id], "lm_head": [marker_id]}
    # a marker written in ordinary words shares its rows with all other text: leave them alone
    assert marker_token_rows(model, processor, "nothing changes") is None


def test_encode_conversation_reports_bad_rows(tmp_path):
    from evostreaming.train.lora import TrainDataError, load_conversations

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"video": "world:1", "turns": []}) + "\n")
    with pytest.raises(TrainDataError, match="bad.jsonl:1: field 'system' is missing"):
        load_conversations(bad)
    tm = tiny("qwen2_5_vl")
    row = {"video": "world:1", "system": "s", "marker": "<silent>", "turns": [{"reply": "x"}] * 99}
    from evostreaming.models import adapter_for

    with pytest.raises(TrainDataError, match="frames for 99 turns"):
        encode_conversation(row, adapter_for(tm.model), tm.processor, tm.model, load_frames)


def test_evolve_show_prints_a_timeline(tmp_path):
    roll = {
        "video": "world:5",
        "question": "tell me when a square appears.",
        "ask_step": 0,
        "steps": [
            {"step": 0, "user_text": "tell me when a square appears.", "reply": "<silent>"},
            {"step": 1, "user_text": None, "reply": "green square appears"},
        ],
    }
    (tmp_path / "rollouts.jsonl").write_text(json.dumps(roll) + "\n")
    res = CliRunner().invoke(app, ["evolve", "show", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "green square appears" in res.output and "2s" in res.output


def test_forward_questions_can_be_asked_at_the_first_step(tmp_path):
    ctx = _ctx(tmp_path)
    pool = world_pool(3, 4)
    rel = [
        {"video": v.id, "question": "tell me when a square appears.", "relevance": [0] * len(v.frames())} for v in pool
    ]
    first = {pool[0].id, pool[2].id}
    rolls = stage_rollout(ctx, rel, {v.id: v for v in pool}, 10, "<silent>", ask_at_start=first)
    by_video = {r["video"]: r for r in rolls}
    assert all(by_video[v]["ask_step"] == 0 for v in first)
    assert all(by_video[v]["steps"][0]["user_text"] == "tell me when a square appears." for v in first)


def _rollout(video: str, question: str, replies: list[str], ask: int = 0) -> dict:
    return {
        "video": video,
        "question": question,
        "ask_step": ask,
        "steps": [{"step": k, "user_text": question if k == ask else None, "reply": r} for k, r in enumerate(replies)],
    }


def test_standardize_adds_self_replay_rows_from_the_models_own_answers(tmp_path):
    ctx = _ctx(tmp_path)
    q = "tell me each change as it happens."
    rolls = [
        _rollout("world:1", q, ["<silent>", "<silent>", "circle turns red", "<silent>"]),
        _rollout("world:2", q, ["<silent>", "square moves to top left", "<silent>", "square disappears"]),
        _rollout("world:3", q, ["<silent>"] * 4),  # no answer: nothing to replay
        _rollout("world:4", q, ["<silent>", "<silent>", "<silent>", "triangle appears"]),
    ]
    # replay 0 (the paper's recipe): streaming conversations only
    path = stage_standardize(ctx, rolls, DEFAULT_SYSTEM_PROMPT, "<silent>")
    assert all("layout" not in json.loads(line) for line in path.read_text().splitlines())
    path = stage_standardize(ctx, rolls, DEFAULT_SYSTEM_PROMPT, "<silent>", replay=1.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    stream, offline = rows[:4], rows[4:]
    assert all("layout" not in r for r in stream)
    # at most one per trajectory with an answer: 3 of the 4 have one
    assert len(offline) == 3 and {r["video"] for r in offline} == {"world:1", "world:2", "world:4"}
    answers = {("world:1", 3): "circle turns red", ("world:2", 2): "square moves to top left"}
    answers |= {("world:2", 4): "square disappears", ("world:4", 4): "triangle appears"}
    for r in offline:
        assert r["layout"] == "offline" and len(r["turns"]) == 1
        # the answer the model gave at step k, from frames 0..k, under the generation system prompt
        assert answers[(r["video"], r["frames"])] == r["turns"][0]["reply"]
        assert r["turns"][0]["user_text"] == q and r["system"] == ctx.backend.system
        assert r["model"] == "tiny:qwen2_5_vl" and r["round"] == 1
    assert json.loads((tmp_path / "stage_report.json").read_text())["standardize"] == {
        "conversations": 4,
        "replay": 3,
        "replay_by_source": {"answer": 3, "taxonomy": 0, "question": 0, "relevance": 0},
        **ctx.stamp(),
    }
    half = stage_standardize(ctx, rolls, DEFAULT_SYSTEM_PROMPT, "<silent>", replay=0.5)
    assert sum("layout" in json.loads(line) for line in half.read_text().splitlines()) == 2


@pytest.mark.parametrize("family", ["qwen2_5_vl", "smolvlm", "internvl"])
def test_replay_rows_are_the_tokens_of_an_offline_question(family):
    # a replay row must be trained in the layout the model answered it in: the chat template's
    # rendering of one user message with the frames and the question
    from evostreaming.models import adapter_for

    tm = tiny(family)
    frames = PoolVideo("world:123").frames()[:3]
    row = {
        "video": "world:123",
        "fps": 0.5,
        "layout": "offline",
        "frames": 3,
        "system": "You are a helpful assistant.",
        "marker": "<silent>",
        "turns": [{"user_text": "what color is the circle now?", "reply": "red"}],
    }
    enc = encode_conversation(row, adapter_for(tm.model), tm.processor, tm.model, load_frames)
    question = [{"type": "text", "text": "what color is the circle now?"}]
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "image"}] * 3 + question},
    ]
    prompt = tm.processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    expected = tm.processor(text=[prompt], images=frames, return_tensors="pt")["input_ids"][0]
    ids = enc["input_ids"][0]
    assert torch.equal(ids[: len(expected)], expected)
    trained = tm.processor.tokenizer.decode(ids[enc["labels"][0] != -100])
    assert trained.strip().startswith("red") and (enc["labels"][0][: len(expected)] == -100).all()


def test_bad_offline_rows_are_reported(tmp_path):
    from evostreaming.train.lora import TrainDataError, load_conversations

    row = {"video": "world:1", "system": "s", "marker": "<silent>", "layout": "offline", "turns": [{"reply": "x"}]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**row, "layout": "stream"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(TrainDataError, match="bad.jsonl:2: an offline row needs 'frames'"):
        load_conversations(bad)
    bad.write_text(json.dumps({**row, "layout": "video"}) + "\n")
    with pytest.raises(TrainDataError, match="bad.jsonl:1: layout 'video'"):
        load_conversations(bad)


def test_annotation_replay_rows_repeat_the_models_own_stage_outputs(tmp_path):
    ctx = _ctx(tmp_path)
    stamp = ctx.stamp()
    tax = [{"video": f"world:{i}", "task_type": TYPES[i % 5], "raw": TYPES[i % 5], **stamp} for i in range(6)]
    tax.append({"video": "world:9", "task_type": None, "raw": "banana", **stamp})  # unparsed: never replayed
    qs = [{"video": "world:1", "task_type": TYPES[1], "questions": ["where was the circle before it moved?"], **stamp}]
    rel = [
        {
            "video": "world:1",
            "question": "where was the circle before it moved?",
            "relevance": [0, 1, 0],
            "unparsed": 0,
        },
        {"video": "world:2", "question": "how it changed?", "relevance": [0, 0], "unparsed": 2},  # never replayed
    ]
    for name, rows in (("taxonomy", tax), ("questions", qs), ("relevance", rel)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rolls = [_rollout("world:1", "what color is the circle now?", ["<silent>", "red", "<silent>"])]
    # 6 rows for the 1 trajectory (the stage takes any ratio; the CLI bounds it to [0, 1])
    path = stage_standardize(ctx, rolls, DEFAULT_SYSTEM_PROMPT, "<silent>", replay_annotations=6.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()][1:]
    by = {s: [r for r in rows if r["source"] == s] for s in ("taxonomy", "question", "relevance")}
    # 6 rows asked, 2 per kind, capped by what exists: 2 task types, 1 question, 2 of 3 relevance labels
    assert [len(by[s]) for s in ("taxonomy", "question", "relevance")] == [2, 1, 2]
    p = load_prompts()
    for r in by["taxonomy"]:
        assert r["frames"] == "all" and r["turns"][0]["user_text"] == p.taxonomy
        assert r["turns"][0]["reply"] == TYPES[int(r["video"].split(":")[1]) % 5]
    (q,) = by["question"]
    assert q["turns"][0] == {"user_text": p.question.format(task_type=TYPES[1]), "reply": qs[0]["questions"][0]}
    for r in by["relevance"]:
        k = r["frames"][1]
        assert r["video"] == "world:1" and r["frames"] == [max(0, k - 1), k]  # the segment the model labelled
        assert r["turns"][0]["reply"] == ("yes" if rel[0]["relevance"][k] else "no")
    report = json.loads((tmp_path / "stage_report.json").read_text())["standardize"]
    assert report["replay_by_source"] == {"answer": 0, "taxonomy": 2, "question": 1, "relevance": 2}


def test_offline_rows_show_the_frames_they_name():
    from evostreaming.train.lora import offline_frames

    frames = list("abcde")
    assert offline_frames(frames, 3) == ["a", "b", "c"]
    assert offline_frames(frames, [0, 0]) == ["a", "a"] and offline_frames(frames, [3, 4]) == ["d", "e"]
    assert offline_frames(frames, "all") == frames
    with pytest.raises(IndexError, match="needs frame 7"):
        offline_frames(frames, [6, 7])
    with pytest.raises(IndexError, match="needs 9"):
        offline_frames(frames, 9)


def test_rollout_cap_keeps_every_task_type(tmp_path):
    ctx = _ctx(tmp_path)
    pool = world_pool(4, 8)
    # relevance rows arrive grouped by type: four videos asked a memory question, then four a forward one
    questions = ["where was the circle before it moved?"] * 4 + ["tell me when a square appears."] * 4
    rel = [
        {"video": v.id, "question": q, "relevance": [0] * len(v.frames())} for v, q in zip(pool, questions, strict=True)
    ]
    rolls = stage_rollout(ctx, rel, {v.id: v for v in pool}, 4, "<silent>")
    assert len(rolls) == 4 and len({r["question"] for r in rolls}) == 2
    order = [v.id for v in pool]
    assert [order.index(r["video"]) for r in rolls] == sorted(order.index(r["video"]) for r in rolls)


def test_demo_refuses_to_resume_a_folder_made_with_other_weights_or_settings(tmp_path):
    from evostreaming.evolve.main_job import STAMP, DemoConfig, check_resumable

    out = tmp_path / "demo"
    check_resumable(out, DemoConfig())  # a new folder: stamped
    (out / "eval-vanilla").mkdir()  # some finished work
    check_resumable(out, DemoConfig())  # same weights and settings: resumes
    with pytest.raises(ValueError, match=r"other settings \(lora_lr\).*--output"):
        check_resumable(out, DemoConfig(lora_lr=1e-4))
    stamp = json.loads((out / STAMP).read_text())
    stamp["pocket_weights"] = "0" * 64  # as if made with an earlier pocket model
    (out / STAMP).write_text(json.dumps(stamp))
    with pytest.raises(ValueError, match="other pocket weights"):
        check_resumable(out, DemoConfig())
    (out / STAMP).unlink()  # a folder from before stamps: its steps cannot be matched
    with pytest.raises(ValueError, match=f"no {STAMP}"):
        check_resumable(out, DemoConfig())
    res = CliRunner().invoke(app, ["demo", "--output", str(out)])
    assert res.exit_code != 0 and "Remove it or pass --output" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["eval-vanilla"]  # nothing was run or written


@pytest.mark.slow
def test_evolve_generates_in_the_precision_asked_for_and_records_it(tmp_path):
    """`evolve run --dtype bfloat16`: stages 1-4 run the local model in bf16 (round.json records the
    loaded weights' dtype and device), the round trains its adapter, and bf16 is another job than the
    float32 default while the device is not part of the job."""
    import subprocess
    import sys

    from evostreaming.evolve.pipeline import EvolveConfig, evolve_identity

    args = ["evolve", "run", "--model", "pocket", "--world-seed", "5", "--n-videos", "4", "--n-samples", "4"]
    args += ["--questions-per-video", "1", "--generation-batch-size", "2", "--epochs", "1", "--dtype", "bfloat16"]
    res = subprocess.run(
        [sys.executable, "-m", "evostreaming.cli", *args, "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((tmp_path / "o" / "round-1" / "round.json").read_text())
    assert info["generation"] == {"device": "cpu", "dtype": "bfloat16"} and info["config"]["dtype"] == "bfloat16"
    assert (tmp_path / "o" / "round-1" / "adapter" / "adapter_model.safetensors").exists()
    pool = world_pool(5, 4)

    def ident(**kw):
        return evolve_identity("pocket", pool, EvolveConfig(**kw))

    assert ident(dtype="bfloat16") != ident() and ident(device="cpu") == ident()
