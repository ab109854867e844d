"""Build the untrained pocket model: Qwen2.5-VL at a small size, with a tokenizer trained on the
world's language (every question, answer, prompt and phrase ShapesWorld can produce)."""

from __future__ import annotations

from evostreaming.models.tiny import TinyModel, build_qwen2_5_vl
from evostreaming.models.tokenizer import DEFAULT_CORPUS
from evostreaming.world.language import TEMPLATES
from evostreaming.world.scene import COLORS, KINDS, QUADRANTS, TASK_TYPES
from evostreaming.world.supervision import CAPTION_PROMPT, QUESTION_PROMPT, RELEVANCE_PROMPT, TASK_TYPE_PROMPT

POCKET_TEXT = dict(
    hidden_size=192,
    intermediate_size=576,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
)
POCKET_VISION = dict(
    depth=2, hidden_size=96, intermediate_size=192, num_heads=2, window_size=56, fullatt_block_indexes=[1]
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
    lines += [TASK_TYPE_PROMPT, CAPTION_PROMPT, "nothing changes", "yes", "no", "You are a helpful assistant."]
    lines += [QUESTION_PROMPT.format(task_type=t) for t in TASK_TYPES]
    lines += [RELEVANCE_PROMPT.format(question=t.text.format(kind=k)) for t in TEMPLATES for k in KINDS]
    lines += [" ".join(str(i) for i in range(20))]
    return lines * 3


def build_pocket(seed: int = 0) -> TinyModel:
    head_dim = POCKET_TEXT["hidden_size"] // POCKET_TEXT["num_attention_heads"]  # 48 -> 24 rotary pairs
    text = dict(
        POCKET_TEXT, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 8, 8]}
    )
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    vision = dict(POCKET_VISION, out_hidden_size=POCKET_TEXT["hidden_size"])
    tm = build_qwen2_5_vl(
        seed, corpus=world_corpus(), text_overrides=text, vision_overrides=vision, max_side_tokens=2, vocab_size=800
    )
    return TinyModel(tm.model, tm.processor, "qwen2_5_vl")
