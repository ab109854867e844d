"""Build the untrained pocket model: Qwen3-VL at a small size, with a tokenizer trained on the
world's language (every question, answer, prompt and phrase ShapesWorld can produce).

Qwen3-VL (its vision tower adds learned absolute position embeddings to the patches). On a CPU,
neither a Qwen2.5-VL nor a Qwen3-VL pocket learned "where is the X?" within 1,000 steps from
position alone (colors and counts: yes); ShapesWorld's quadrant tiles are therefore tinted, which
makes a quadrant's identity part of its pixels.
"""

from __future__ import annotations

from evostreaming.models.families.qwen3_vl import build_qwen3_vl
from evostreaming.models.tiny import TinyModel
from evostreaming.models.tokenizer import DEFAULT_CORPUS
from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER
from evostreaming.world.language import TEMPLATES
from evostreaming.world.scene import COLORS, KINDS, QUADRANTS, TASK_TYPES
from evostreaming.world.supervision import (
    CAPTION_PROMPT,
    HISTORY_PROMPT,
    INVENTORY_PROMPT,
    KIND_LIST_PROMPT,
    QUESTION_PROMPT,
    RELEVANCE_PROMPT,
    TASK_TYPE_PROMPT,
)

POCKET_TEXT = dict(
    hidden_size=192,
    intermediate_size=576,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
)
# 16 learned absolute position embeddings = the 4x4 patch grid of a 56x56 frame
POCKET_VISION = dict(
    depth=2,
    hidden_size=96,
    intermediate_size=192,
    num_heads=2,
    num_position_embeddings=16,
    deepstack_visual_indexes=[0],
)


def world_corpus() -> list[str]:
    lines = list(DEFAULT_CORPUS)
    lines += [t.text.format(kind=k) for t in TEMPLATES for k in KINDS]
    lines += [
        f"{c} {k} appears, {k} disappears, {k} moves to {q}, {k} turns {c}"
        for c in COLORS
        for k in KINDS
        for q in QUADRANTS
    ]
    lines += [f"{c} {k} at {q}" for c in COLORS for k in KINDS for q in QUADRANTS]
    lines += [f"{k} at {q} in {c}" for c in COLORS for k in KINDS for q in QUADRANTS]
    lines += [
        f"{k} appears at {q} in {c}, moves to {q}, turns {c}, disappears; "
        for c in COLORS
        for k in KINDS
        for q in QUADRANTS
    ]
    lines += [TASK_TYPE_PROMPT, CAPTION_PROMPT, INVENTORY_PROMPT, KIND_LIST_PROMPT, HISTORY_PROMPT]
    lines += ["no shapes", "nothing changes", "yes", "no"]
    lines += ["You are a helpful assistant."]
    lines += [QUESTION_PROMPT.format(task_type=t) for t in TASK_TYPES]
    lines += [RELEVANCE_PROMPT.format(question=t.text.format(kind=k)) for t in TEMPLATES for k in KINDS]
    lines += [" ".join(str(i) for i in range(20))]
    return lines * 3


def build_pocket(seed: int = 0) -> TinyModel:
    head_dim = POCKET_TEXT["hidden_size"] // POCKET_TEXT["num_attention_heads"]  # 48 -> 24 rotary pairs
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 8, 8], "mrope_interleaved": True}
    assert sum(rope["mrope_section"]) == head_dim // 2
    text = dict(POCKET_TEXT, head_dim=head_dim, rope_parameters=rope)
    vision = dict(POCKET_VISION, out_hidden_size=POCKET_TEXT["hidden_size"])
    # 56x56 frames, 14-pixel patches, 2x2 merge: one visual token per quadrant
    tm = build_qwen3_vl(
        seed,
        corpus=world_corpus(),
        text_overrides=text,
        vision_overrides=vision,
        max_side_tokens=2,
        vocab_size=800,
        patch=14,
        # The silence marker is one ordinary token of the vocabulary, never seen in training (a
        # vanilla model has no use for it); one token keeps the decision and the LoRA target short.
        added_tokens=[DEFAULT_SILENCE_MARKER],
    )
    return TinyModel(tm.model, tm.processor, "qwen3_vl")
