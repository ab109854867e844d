"""Qwen3-VL: Qwen2-VL's turn format and M-RoPE (``qwen2_vl.QwenVLAdapter``), interleaved M-RoPE and DeepStack."""

from __future__ import annotations

import torch

from evostreaming.models.families.qwen2_vl import (
    QWEN_VL_TEMPLATE,
    QwenVLAdapter,
    qwen_ids,
    qwen_image_size,
    qwen_tokenizer,
)
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TEXT, TinyModel, text_ids


class Qwen3VLAdapter(QwenVLAdapter):
    family = "qwen3_vl"
    model_types = ("qwen3_vl",)


def build_qwen3_vl(
    seed: int = 0,
    *,
    corpus=None,
    text_overrides=None,
    vision_overrides=None,
    max_side_tokens: int = 4,
    vocab_size: int = 600,
    patch: int = 16,
    added_tokens: list[str] | None = None,
) -> TinyModel:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = qwen_tokenizer(corpus, vocab_size)
    if added_tokens:
        tok.add_tokens(added_tokens)  # ordinary (non-special) tokens: decoding keeps them
    text = dict(TEXT, vocab_size=len(tok), head_dim=16, **text_ids(tok))
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    text.update(text_overrides or {})
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        patch_size=patch,
        num_position_embeddings=64,
        deepstack_visual_indexes=[0],
    )
    vision.update(vision_overrides or {})
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **qwen_ids(tok))
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    size = qwen_image_size(patch, 2, max_side_tokens)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=patch, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=patch),
        tokenizer=tok,
        chat_template=QWEN_VL_TEMPLATE,
    )
    return TinyModel(model, processor, "qwen3_vl")


register_family(Qwen3VLAdapter, build_qwen3_vl)
