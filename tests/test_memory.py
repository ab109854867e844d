"""Bounded KV memory: size stops growing, positions stay compact, re-rotation is exact."""

import numpy as np
import pytest
import torch

from conftest import MROPE_FAMILIES, tiny
from evostreaming.stream.memory import MemoryPolicy, Segment, rotate_keys
from evostreaming.stream.session import SessionConfig, StreamingSession


def _frame(k, size=56):
    rng = np.random.default_rng(k)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def _bounded(tm, window, max_text_turns=64, keep_inputs=False):
    cfg = SessionConfig(silence_threshold=0.0, memory=MemoryPolicy(window_frames=window, max_text_turns=max_text_turns))
    return StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=keep_inputs)


@pytest.mark.parametrize("family", MROPE_FAMILIES)
def test_rotate_keys_matches_the_models_rope_at_shifted_positions(family):
    import sys

    tm = tiny(family)
    text_model = tm.model.model.language_model
    apply_rotary_pos_emb = sys.modules[type(text_model).__module__].apply_rotary_pos_emb  # the text tower's own
    rot = text_model.rotary_emb
    text = tm.model.config.get_text_config()
    # Qwen3.5 rotates only a quarter of each head
    head_dim = text.head_dim if "head_dim" in text.to_dict() else text.hidden_size // text.num_attention_heads
    k = torch.randn(1, 2, 6, head_dim)
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


def _full_attention_families():
    from evostreaming.models.family import FAMILIES

    return [name for name, f in FAMILIES.items() if not getattr(f.adapter, "hybrid_memory", False)]


def _hybrid_families():
    from evostreaming.models.family import FAMILIES

    return [name for name, f in FAMILIES.items() if getattr(f.adapter, "hybrid_memory", False)]


@pytest.mark.parametrize("family", _full_attention_families())
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


@pytest.mark.parametrize("family", _hybrid_families())
def test_hybrid_eviction_moves_full_attention_keys_and_keeps_linear_states(family):
    """A hybrid model's eviction: the full-attention layers lose the evicted frames' keys, and the kept
    keys equal their pre-eviction values re-rotated to the compacted positions; the linear layers'
    fixed-size states are untouched (they absorbed every frame and cannot forget one)."""
    from evostreaming.stream import hybrid
    from evostreaming.stream.memory import evict_segments

    tm = tiny(family)
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(silence_threshold=0.0))
    for k in range(5):
        s.step(_frame(k), 2.0 * k, "Is it red?" if k == 1 else None)
    s.sync()
    full = [i for i, layer in enumerate(s.cache.layers) if hybrid.has_kv(layer)]
    assert full and any(hybrid.is_linear(layer) for layer in s.cache.layers)
    before = {i: s.cache.layers[i].keys.clone() for i in full}
    states = hybrid.snapshot(s.cache)
    remove = {i for i, seg in enumerate(s.segments) if seg.kind == "frame" and seg.step in (0, 2)}
    index, shift, offset, span = [], [], 0, 0  # expected: kept cache rows and their position shifts
    for i, seg in enumerate(s.segments):
        if i in remove:
            span += seg.pos_span
        else:
            index += range(offset, offset + seg.n_tokens)
            shift += [-span] * seg.n_tokens
        offset += seg.n_tokens
    inv_freq = s.adapter.inv_freq(tm.model)
    s.segments, removed = evict_segments(s.cache, s.segments, remove, inv_freq)
    assert removed == span > 0 and s.cache_tokens == len(index)
    for i in full:
        expect = rotate_keys(before[i][..., index, :], torch.tensor(shift), inv_freq)
        assert (s.cache.layers[i].keys - expect).abs().max().item() < 1e-5
    for (i, conv, rec), (j, conv2, rec2) in zip(states, hybrid.snapshot(s.cache), strict=True):
        assert i == j
        assert all(torch.equal(conv[k], conv2[k]) for k in conv) and all(torch.equal(rec[k], rec2[k]) for k in rec)
