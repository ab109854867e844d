"""The silence decision: greedy rule, responsiveness threshold, speculative tokens removed."""

import numpy as np
import pytest
import torch

from conftest import tiny
from evostreaming.stream.decision import decide
from evostreaming.stream.session import SessionConfig, StreamingSession


def _logits(rows):
    return torch.tensor(rows, dtype=torch.float)


def test_greedy_silent_only_if_every_marker_token_is_argmax():
    marker = [2, 0]
    both = _logits([[0, 0, 5.0], [5.0, 0, 0]])
    assert decide(both, marker, None).silent
    second_wrong = _logits([[0, 0, 5.0], [0, 5.0, 0]])
    assert not decide(second_wrong, marker, None).silent


def test_silence_probability_is_the_product_over_marker_tokens():
    rows = _logits([[0.0, 0.0], [0.0, 0.0]])  # uniform over 2 tokens at both positions
    d = decide(rows, [1, 0], None)
    assert d.silence_prob == pytest.approx(0.25)


@pytest.mark.parametrize(("threshold", "silent"), [(0.2, True), (0.25, True), (0.3, False)])
def test_threshold_is_a_responsiveness_knob(threshold, silent):
    rows = _logits([[0.0, 0.0], [0.0, 0.0]])
    assert decide(rows, [1, 0], threshold).silent is silent


def test_responding_removes_the_speculative_marker_tokens_from_the_cache():
    tm = tiny("qwen2_vl")
    cfg = SessionConfig(silence_threshold=1.0, max_new_tokens=2)  # silent only when certain: always responds here
    s = StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=True)
    frame = np.zeros((56, 56, 3), dtype=np.uint8)
    s.push_frame(frame, "Describe it.")
    before = s.cache_tokens
    res_tokens = s.generate_reply() if not s.decide().silent else None
    assert res_tokens is not None
    # Only the response tokens were added: the marker head fed to score silence is gone.
    assert s.cache_tokens == before + len(res_tokens)
    assert len(s.logit_log) == 1 + len(res_tokens)


def test_silent_step_keeps_the_marker_in_the_conversation():
    tm = tiny("qwen2_vl")
    cfg = SessionConfig(silence_threshold=0.0)  # always silent
    s = StreamingSession(tm.model, tm.processor, config=cfg, keep_inputs=True)
    res = s.step(np.zeros((56, 56, 3), dtype=np.uint8), 0.0)
    s.sync()
    assert res.action == "silent" and res.text == ""
    ids, _ = s.cached_inputs()
    text = tm.processor.tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\n<silent><|im_end|>\n")
