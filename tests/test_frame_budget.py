"""--visual-tokens-per-frame: a frame costs at most that many visual tokens in the M-RoPE (Qwen)
families, whose processors resize by a pixel budget; fixed-count families are left as they are."""

import numpy as np
import pytest

from conftest import tiny
from evostreaming.stream.session import SessionConfig, StreamingSession

FRAME = np.zeros((448, 448, 3), np.uint8)


def _image_tokens(family: str, budget: int | None) -> int:
    tm = tiny(family)
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(visual_tokens_per_frame=budget), keep_inputs=True)
    s.push_frame(FRAME)
    ids, _ = s.cached_inputs()
    pad = tm.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    return int((ids == pad).sum())


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_a_square_frame_gets_the_square_number_of_tokens_asked_for(family):
    # 448x448 resized to a k x k grid of merged tokens: k^2 <= budget, the largest such square
    assert _image_tokens(family, 4) == 4
    assert _image_tokens(family, 9) == 9
    assert _image_tokens(family, 10) == 9
    assert _image_tokens(family, None) == 16  # the tiny processors' own cap (4 x 4)


def test_a_fixed_count_family_ignores_the_budget():
    tm = tiny("internvl")
    counts = []
    for budget in (4, 128, None):
        s = StreamingSession(
            tm.model, tm.processor, config=SessionConfig(visual_tokens_per_frame=budget), keep_inputs=True
        )
        s.push_frame(FRAME)
        counts.append(int(s.cached_inputs()[0].numel()))
    assert len(set(counts)) == 1


def test_a_budget_below_one_token_is_refused():
    with pytest.raises(ValueError, match="--visual-tokens-per-frame must be >= 1"):
        SessionConfig(visual_tokens_per_frame=0)


def test_training_conversations_encode_frames_at_the_budget_they_are_given():
    """LoRA rows are rendered at the session's frame budget (an argument, never adapter state): 16
    visual tokens per frame give a shorter conversation than 128 for the same large frame."""
    import numpy as np

    from conftest import tiny
    from evostreaming.models import adapter_for
    from evostreaming.stream.conversation import Turn, render_conversation

    tm = tiny("qwen2_vl")
    adapter = adapter_for(tm.model, tm.processor)
    frame = np.random.default_rng(0).integers(0, 255, (448, 448, 3), dtype=np.uint8)
    turns = [Turn(frame, "What is it?", "A square.", True)]
    n = {
        b: render_conversation(adapter, tm.processor, "s", turns, "<silent>", b)["input_ids"].numel() for b in (16, 128)
    }
    assert n[16] < n[128]
    assert not hasattr(adapter, "visual_tokens")  # nothing per call is left on the shared adapter
