"""Incremental streaming equals one offline forward over the same conversation, per family."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import QWEN_FAMILIES, offline_logits, tiny
from evostreaming.models import family_names
from evostreaming.stream.session import SessionConfig, StreamingSession


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    # Varying sizes so image token counts differ between frames.
    return [rng.integers(0, 255, (56 + 14 * (k % 3), 84, 3), dtype=np.uint8) for k in range(n)]


@pytest.mark.parametrize("family", family_names())
def test_incremental_logits_equal_offline_forward(family):
    tm = tiny(family)
    cfg = SessionConfig(max_new_tokens=3)
    s = StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=True)
    actions = []
    for k, frame in enumerate(_frames(9)):
        question = "What color is the square?" if k in (1, 4, 7) else None
        s.push_frame(frame, question)
        if k % 3 == 0:
            s.append_reply("It is red." if k else cfg.silence_marker)  # teacher-forced turns
            actions.append("forced")
        else:
            # k%3==1: threshold 0 -> the model must stay silent; k%3==2: threshold > 1 -> respond.
            s.config.silence_threshold = 0.0 if k % 3 == 1 else 1.01
            d = s.decide()
            if not d.silent:
                s.generate_reply(ban_marker_start=d.greedy_silent)
            actions.append("silent" if d.silent else "respond")
    s.sync()
    assert {"silent", "respond", "forced"} <= set(actions)
    ref = offline_logits(s, tm.model)
    inc = torch.cat(s.logit_log)
    assert inc.shape == ref.shape  # every cached token's logits were produced incrementally
    assert (inc - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", family_names())
def test_session_tokens_match_the_chat_template(family):
    tm = tiny(family)
    cfg = SessionConfig(system_prompt="You watch a stream.")
    s = StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=True)
    frames = [Image.fromarray(f) for f in _frames(3)]
    replies = ["<silent>", "A red square.", "<silent>"]
    texts = [None, "What is it?", None]
    messages = [{"role": "system", "content": "You watch a stream."}]
    for frame, text, reply in zip(frames, texts, replies, strict=True):
        s.push_frame(frame, text)
        s.append_reply(reply)
        content = [{"type": "image"}] + ([{"type": "text", "text": text}] if text else [])
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": reply}]
    s.sync()
    rendered = tm.processor.apply_chat_template(messages, tokenize=False)
    # the processor settings the session asks for (InternVL: one tile per frame, as it reads video)
    kw = s.adapter.processor_kwargs()
    expected = tm.processor(text=[rendered], images=frames, return_tensors="pt", **kw)["input_ids"][0]
    ids, _ = s.cached_inputs()
    assert ids.tolist() == expected.tolist()


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_mrope_positions_continue_across_segments(family):
    tm = tiny(family)
    s = StreamingSession(tm.model, tm.processor, keep_inputs=True)
    for frame in _frames(3):
        s.push_frame(frame)
        s.append_reply("<silent>")
    s.sync()
    ids, mm = s.cached_inputs()
    inputs = s.adapter.offline_inputs(tm.model, ids, mm)
    ref_pos, _ = tm.model.model.get_rope_index(
        inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], image_grid_thw=mm["image_grid_thw"]
    )
    # The session's next position is exactly one past the offline maximum.
    assert s.next_pos == int(ref_pos.max()) + 1


@pytest.mark.parametrize("family", family_names())
def test_session_hands_the_cache_over_under_the_installed_forwards_name(family):
    # transformers 5.24 renamed the forward's past_key_values to cache (the old name warns, then goes)
    import warnings

    tm = tiny(family)
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(max_new_tokens=2))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        for frame in _frames(2):
            s.push_frame(frame, "What color is the square?")
            s.sync()
    # the forwards filled the session's own cache, with every cached segment
    assert s.cache.get_seq_length() == sum(seg.n_tokens for seg in s.segments) > 0
