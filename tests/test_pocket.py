"""The pocket VideoLLM: training smoke run and resume, committed weights, offline skill, streaming."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import offline_logits
from evostreaming.models.pocket import WEIGHTS_DIR, pocket_available
from evostreaming.world.pocket.train import PocketTrainConfig, train_pocket

SMOKE = dict(steps=8, batch_size=4, warmup=1, lr=2e-3, checkpoint_every=4, log_every=1, n_scenes=50, vision_steps=2)


def test_training_smoke_loss_decreases(tmp_path):
    train_pocket(tmp_path, PocketTrainConfig(**SMOKE))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.5
    assert (tmp_path / "final" / "model.safetensors").exists()


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    cfg = PocketTrainConfig(**SMOKE)
    train_pocket(tmp_path / "straight", cfg)
    train_pocket(tmp_path / "resumed", cfg, max_steps_this_run=4)  # "killed" after the step-4 checkpoint
    assert not (tmp_path / "resumed" / "final").exists()
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    train_pocket(tmp_path / "resumed", cfg)
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_frozen_vision_tower_stays_fixed_while_its_projector_trains(tmp_path):
    from evostreaming.world.pocket.build import build_pocket

    torch.manual_seed(0)
    initial = {k: v.clone() for k, v in build_pocket(0).model.state_dict().items() if "visual" in k}
    train_pocket(tmp_path, PocketTrainConfig(**{**SMOKE, "vision_steps": 0, "steps": 3}))
    final = load_file(str(tmp_path / "final" / "model.safetensors"))
    for name, before in initial.items():
        after = final[name]
        if "merger" in name:
            continue
        assert torch.equal(before, after), name
    assert any(not torch.equal(initial[n], final[n]) for n in initial if "merger" in n and n.endswith("weight"))


def test_quadrant_labels_name_what_each_token_shows():
    from evostreaming.world.pocket.vision import quadrant_labels
    from evostreaming.world.scene import Scene, ShapeState

    scene = Scene(
        seed=1,
        task_type="immediate visual",
        n_steps=2,
        background="plain",
        bg_level=90,
        initial=[ShapeState("triangle", "blue", "top right"), ShapeState("circle", "red", "bottom right")],
    )
    # KINDS = circle, square, triangle (1-3, 0 = empty); COLORS = red, green, blue, yellow (1-4)
    assert quadrant_labels(scene, 0.0) == [(0, 0, 0), (3, 3, 1), (0, 0, 2), (1, 1, 3)]


@pytest.mark.slow
def test_vision_pretraining_teaches_the_tower_which_shape_is_which():
    from evostreaming.world.pocket.build import build_pocket
    from evostreaming.world.pocket.vision import pretrain_vision, vision_probe

    torch.manual_seed(0)
    tm = build_pocket(0)
    losses = pretrain_vision(tm.model, tm.processor, steps=60, batch_size=32)
    assert sum(losses[-5:]) / 5 < 0.1 * sum(losses[:5]) / 5
    probe = vision_probe(tm.model, tm.processor, n_frames=600)
    assert probe["kind"] >= 0.95 and probe["color"] >= 0.95


def test_labels_cover_every_answer_and_nothing_else():
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.pocket.build import build_pocket
    from evostreaming.world.pocket.data import IGNORE, encode_example
    from evostreaming.world.scene import render_frames
    from evostreaming.world.supervision import Example

    processor = build_pocket(0).processor
    frames = [f for _, f in render_frames(generate_scene(4))][:3]
    ex = Example("qa", frames, "how many shapes are there now?", "2", "immediate visual", {})
    ex.follow_ups = [("what color is the circle now?", "red"), ("describe the video.", "circle turns red")]
    enc = encode_example(processor, ex)
    targets = processor.tokenizer.decode(enc["labels"][enc["labels"] != IGNORE])
    assert targets == "2<|im_end|>red<|im_end|>circle turns red<|im_end|>"
    assert enc["labels"].shape == enc["input_ids"].shape


needs_weights = pytest.mark.skipif(not pocket_available(), reason="pocket weights not committed yet")


@needs_weights
def test_committed_weights_load_by_name_and_fit_the_budget():
    from evostreaming.models.loading import load_model

    loaded = load_model("pocket")
    assert loaded.adapter.family == "qwen3_vl"
    assert type(loaded.model).__name__ == "Qwen3VLForConditionalGeneration"
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir())
    assert size <= 20 * 1024 * 1024
    assert not list(WEIGHTS_DIR.glob("*.bin")) and not list(WEIGHTS_DIR.glob("*.pt"))


@needs_weights
def test_pocket_streams_exactly_like_an_offline_forward():
    import numpy as np

    from evostreaming.models.pocket import load_pocket
    from evostreaming.stream.session import SessionConfig, StreamingSession
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.scene import render_frames

    model, processor = load_pocket()
    s = StreamingSession(model, processor, config=SessionConfig(max_new_tokens=4), keep_inputs=True)
    frames = render_frames(generate_scene(10_000_007))
    for k, (_, frame) in enumerate(frames[:8]):
        s.push_frame(np.asarray(frame), "tell me each change as it happens." if k == 0 else None)
        d = s.decide()
        if not d.silent:
            s.generate_reply(ban_marker_start=d.greedy_silent)
    s.sync()
    ref = offline_logits(s, model)
    assert (torch.cat(s.logit_log) - ref).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def heldout_metrics():
    if not pocket_available():
        pytest.skip("pocket weights not committed yet")
    from evostreaming.models.pocket import load_pocket
    from evostreaming.world.pocket.evaluate import offline_metrics

    model, processor = load_pocket()
    return offline_metrics(model, processor, n_per_kind=40, seed=20_000_000)


@pytest.mark.slow
def test_offline_skill_well_above_chance_on_a_small_heldout_set(heldout_metrics):
    # What the released (v6) pocket model reliably does; chance is 25% for colors/places, 50% for yes/no.
    m = heldout_metrics
    assert m["qa_accuracy_by_task_type"]["immediate visual"] >= 0.7
    assert m["relevance_accuracy"] >= 0.85  # balanced per question: the segment decides, not the question
    assert m["task_type_accuracy"] >= 0.5
    assert m["question_validity"] >= 0.5


@pytest.mark.slow
def test_offline_qa_splits_count_every_question_once(heldout_metrics):
    m = heldout_metrics
    n = m["n_by_kind"]["qa"]
    by_t, acc_t = m["n_qa_by_template"], m["qa_accuracy_by_template"]
    assert sum(by_t.values()) == n and sum(m["n_qa_by_form"].values()) == n
    # the "tell me ..." templates are the streaming requests; the rest are ordinary questions
    requests = {"count_moves", "when_appears", "each_change"}
    assert m["n_qa_by_form"].get("stream request", 0) == sum(by_t.get(k, 0) for k in requests)
    correct = sum(acc_t[k] * by_t[k] for k in by_t)
    assert correct == pytest.approx(m["qa_accuracy"] * n)


@pytest.mark.slow
def test_offline_relevance_and_question_writing_meet_the_model_card_targets(heldout_metrics):
    m = heldout_metrics
    assert m["relevance_accuracy"] >= 0.85
    assert m["question_validity"] >= 0.90
    assert m["kind_list_accuracy"] >= 0.85  # v6: each shape found by its kind
    assert m["inventory_accuracy"] >= 0.90  # v3's vision stage: every shape named with kind, color, place


@pytest.mark.slow
def test_offline_qa_meets_the_model_card_target(heldout_metrics):
    assert heldout_metrics["qa_accuracy"] >= 0.85
    # v7: each shape followed through the frames (where was it before it moved: 47% in v6)
    assert heldout_metrics["history_accuracy"] >= 0.5


@needs_weights
@pytest.mark.slow
def test_committed_vision_tower_tells_shapes_apart():
    from evostreaming.models.pocket import load_pocket
    from evostreaming.world.pocket.vision import vision_probe

    model, processor = load_pocket()
    probe = vision_probe(model, processor, n_frames=600)
    assert probe["kind"] >= 0.95 and probe["color"] >= 0.95


@needs_weights
@pytest.mark.slow
def test_committed_model_answers_about_the_named_shape_among_several():
    # v3 answered about an arbitrary shape here (about half right); the list by kind taught v6 to find it
    from evostreaming.models.pocket import load_pocket
    from evostreaming.world.pocket.evaluate import perception_metrics

    model, processor = load_pocket()
    m = perception_metrics(model, processor, n_frames=80, seed=30_000_000)
    assert m["named shape among several"]["n"] >= 20
    assert m["named shape among several"]["accuracy"] >= 0.85


@needs_weights
@pytest.mark.slow
def test_questions_asked_in_the_streaming_format_are_still_answered():
    # one frame per user turn with silences in between: what the session shows the model
    from evostreaming.models.pocket import load_pocket
    from evostreaming.world.pocket.evaluate import streamed_qa_metrics

    model, processor = load_pocket()
    m = streamed_qa_metrics(model, processor, n=40, seed=20_000_000)
    assert sum(v["n"] for v in m["by_task_type"].values()) == 40
    assert m["by_task_type"]["immediate visual"]["streamed"] >= 0.6  # chance: 25% (colors, places)


def test_frames_can_arrive_one_user_message_each_with_the_same_targets():
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.pocket.build import build_pocket
    from evostreaming.world.pocket.data import IGNORE, batch_examples, encode_example
    from evostreaming.world.scene import render_frames
    from evostreaming.world.supervision import Example

    processor = build_pocket(0).processor
    frames = [f for _, f in render_frames(generate_scene(4))][:3]
    ex = Example("qa", frames, "how many shapes are there now?", "2", "immediate visual", {})
    ex.follow_ups = [("what color is the circle now?", "red")]
    together = encode_example(processor, ex)
    ex.meta["frames_per_turn"] = True
    apart = encode_example(processor, ex)
    text = processor.tokenizer.decode(apart["input_ids"])
    assert text.count("<|im_start|>user") == 3 + 1  # three frames, then the follow-up
    assert processor.tokenizer.decode(together["input_ids"]).count("<|im_start|>user") == 1 + 1
    assert torch.equal(apart["pixel_values"], together["pixel_values"])
    targets = [processor.tokenizer.decode(e["labels"][e["labels"] != IGNORE]) for e in (together, apart)]
    assert targets[0] == targets[1] == "2<|im_end|>red<|im_end|>"

    # 0 leaves the released model's data untouched; a fraction flags only multi-frame examples
    plain = batch_examples(0, 1500, 16, 20_000, 1000)
    assert [(e.prompt, e.answer) for e in plain] == [
        (e.prompt, e.answer) for e in batch_examples(0, 1500, 16, 20_000, 1000, 0.0)
    ]
    mixed = batch_examples(0, 1500, 16, 20_000, 1000, 1.0)
    assert [(e.prompt, e.answer) for e in plain] == [(e.prompt, e.answer) for e in mixed]
    assert all(e.meta.get("frames_per_turn") == (len(e.frames) > 1) for e in mixed)
    assert not any(e.meta.get("frames_per_turn") for e in plain)


def test_perception_conversations_open_with_the_list_by_kind_the_inventory_or_nothing():
    import random

    from evostreaming.world.generator import generate_scene
    from evostreaming.world.language import answer_at, parse_question
    from evostreaming.world.pocket.data import PERCEPTION_OPENERS, perception_examples
    from evostreaming.world.supervision import KIND_LIST_PROMPT, kind_list

    scene = generate_scene(5)  # immediate visual: 2-3 static shapes
    for opener, first_kind in (("kind_list", "kind_list"), ("inventory", "inventory"), ("direct", "qa")):
        for ex in perception_examples(scene, random.Random(0), 5, (opener,)):
            assert ex.kind == first_kind and len(ex.frames) == 1
            if opener == "kind_list":
                assert ex.prompt == KIND_LIST_PROMPT and ex.answer == kind_list(scene, 0.0)
            turns = [(ex.prompt, ex.answer)] + ex.follow_ups if opener == "direct" else ex.follow_ups
            assert len(turns) == 3  # the per-shape questions, answered about the shown frame
            for prompt, answer in turns:
                assert answer_at(scene, parse_question(prompt), 0.0) == answer
    # the released recipe opens half of them with the list by kind
    share = {k: PERCEPTION_OPENERS.count(k) / len(PERCEPTION_OPENERS) for k in set(PERCEPTION_OPENERS)}
    assert share == {"kind_list": 0.5, "inventory": 0.25, "direct": 0.25}
    assert PocketTrainConfig().perception_openers == PERCEPTION_OPENERS


def test_training_mixture_draws_only_the_kinds_it_weights():
    from evostreaming.world.pocket.data import batch_examples
    from evostreaming.world.supervision import HISTORY_PROMPT, WEIGHTS, WEIGHTS_V6

    only = batch_examples(0, 5, 8, 100, perception_steps=0, mixture={"history": 1.0})
    assert {ex.kind for ex in only} == {"history"} and {ex.prompt for ex in only} == {HISTORY_PROMPT}
    v6 = [
        ex.kind for step in range(40) for ex in batch_examples(0, step, 16, 100, perception_steps=0, mixture=WEIGHTS_V6)
    ]
    assert "history" not in v6 and "caption" in v6
    now = [ex.kind for step in range(40) for ex in batch_examples(0, step, 16, 100, perception_steps=0)]
    assert "history" in now  # the released mixture (WEIGHTS) teaches the story of each shape
    assert WEIGHTS["history"] > 0 and PocketTrainConfig().mixture == WEIGHTS


def test_training_runs_with_frames_one_message_each(tmp_path):
    cfg = PocketTrainConfig(**{**SMOKE, "steps": 2, "perception_steps": 0, "frames_per_turn": 1.0})
    train_pocket(tmp_path, cfg)
    assert (tmp_path / "final" / "model.safetensors").exists()
    assert json.loads((tmp_path / "train_config.json").read_text())["frames_per_turn"] == 1.0
