"""Bounded KV memory: size stops growing, positions stay compact, re-rotation is exact."""

import numpy as np
import pytest
import torch

from conftest import QWEN_FAMILIES, tiny
from evostreaming.models import family_names
from evostreaming.stream.memory import MemoryPolicy, Segment, rotate_keys
from evostreaming.stream.session import SessionConfig, StreamingSession


def _frame(k, size=56):
    rng = np.random.default_rng(k)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def _bounded(tm, window, max_text_turns=64, keep_inputs=False):
    cfg = SessionConfig(silence_threshold=0.0, memory=MemoryPolicy(window_frames=window, max_text_turns=max_text_turns))
    return StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=keep_inputs)


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_rotate_keys_matches_the_models_rope_at_shifted_positions(family):
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb

    tm = tiny(family)
    rot = tm.model.model.language_model.rotary_emb
    k = torch.randn(1, 2, 6, 16)
    p = torch.tensor([40, 41, 42, 45, 45, 46])

    def rope(x, pos):
        cos, sin = rot(x, pos.view(1, 1, -1).expand(3, 1, -1))
        return apply_rotary_pos_emb(x, x, cos, sin)[1]

    moved = rotate_keys(rope(k, p), torch.full((6,), -17), rot.inv_freq)
    assert (moved - rope(k, p - 17)).abs().max() < 1e-5


def test_cache_and_positions_stop_growing_after_the_window_fills():
    tm = tiny("qwen2_5_vl")
    s = _bounded(tm, window=4)
    sizes, positions = [], []
    for k in range(30):
        s.step(_frame(k), 2.0 * k, "Tell me when it turns blue." if k == 0 else None)
        sizes.append(s.cache_tokens)
        positions.append(s.next_pos)
    # Identical frames sizes and silent steps: once full, every step evicts exactly what it adds.
    assert len(set(sizes[6:])) == 1
    assert len(set(positions[6:])) == 1
    assert max(sizes) == sizes[-1]
    frames_cached = [seg for seg in s.segments if seg.kind == "frame"]
    assert len(frames_cached) == 4


def test_unbounded_cache_keeps_growing():
    tm = tiny("qwen2_5_vl")
    cfg = SessionConfig(silence_threshold=0.0)
    s = StreamingSession(tm.model, tm.processor, config=cfg)
    sizes = []
    for k in range(8):
        s.step(_frame(k), 2.0 * k)
        sizes.append(s.cache_tokens)
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False))


def test_text_turns_survive_frame_eviction_until_the_text_budget():
    tm = tiny("qwen2_vl")
    s = _bounded(tm, window=2, max_text_turns=2)
    questions = {1: "first?", 3: "second?", 5: "third?"}
    for k in range(10):
        s.step(_frame(k), 2.0 * k, questions.get(k))
    kept_text_steps = sorted({seg.step for seg in s.segments if seg.kind == "text"})
    # Budget 2: the oldest question (step 1) is gone, the last two stay without their frames.
    assert kept_text_steps == [3, 5]
    frame_steps = sorted(seg.step for seg in s.segments if seg.kind == "frame")
    assert frame_steps == [8, 9]
    assert s.segments[0].kind == "system"


@pytest.mark.parametrize("family", family_names())
def test_after_eviction_positions_and_first_layer_keys_equal_the_pruned_conversation(family):
    # Layer-0 keys depend only on the token and its position, so they must equal those of an
    # offline forward over the conversation with the evicted pieces removed.
    tm = tiny(family)
    s = _bounded(tm, window=3, keep_inputs=True)
    for k in range(8):
        s.step(_frame(k, 56 + 28 * (k % 2)), 2.0 * k, "Is it red?" if k == 2 else None)
    s.sync()
    ids, mm = s.cached_inputs()
    with torch.no_grad():
        out = tm.model(**s.adapter.offline_inputs(tm.model, ids, mm), use_cache=True)
    ref_k = out.past_key_values.layers[0].keys
    got_k = s.cache.layers[0].keys
    assert got_k.shape == ref_k.shape
    assert (got_k - ref_k).abs().max().item() < 1e-4
    ref_v = out.past_key_values.layers[0].values
    assert (s.cache.layers[0].values - ref_v).abs().max().item() < 1e-5


def test_bounded_equals_unbounded_until_the_first_eviction():
    tm = tiny("qwen3_vl")
    a = _bounded(tm, window=5, keep_inputs=True)
    b = StreamingSession(tm.model, tm.processor, config=SessionConfig(silence_threshold=0.0), keep_inputs=True)
    for k in range(5):
        ra, rb = a.step(_frame(k), 2.0 * k), b.step(_frame(k), 2.0 * k)
        assert ra.silence_prob == pytest.approx(rb.silence_prob, abs=1e-6)
    assert torch.equal(torch.cat(a.logit_log), torch.cat(b.logit_log))


def test_policy_never_evicts_system_or_current_step():
    segs = [Segment("system", -1, 10, 0, 10)]
    pos = 10
    for step in range(5):
        for kind in ("open", "frame", "prompt", "reply", "close"):
            segs.append(Segment(kind, step, 2, pos, pos + 2, silent=(kind == "reply")))
            pos += 2
    evict = MemoryPolicy(window_frames=1).select(segs, current_step=4)
    assert 0 not in evict
    assert all(segs[i].step < 4 for i in evict)
    assert {segs[i].step for i in evict} == {0, 1, 2, 3}
