"""Qwen2.5-VL: Qwen2-VL's turn format and M-RoPE (``qwen2_vl.QwenVLAdapter``), a windowed vision tower."""

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


class Qwen2_5VLAdapter(QwenVLAdapter):
    family = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)


def build_qwen2_5_vl(
    seed: int = 0,
    *,
    corpus=None,
    text_overrides=None,
    vision_overrides=None,
    max_side_tokens: int = 4,
    vocab_size: int = 600,
) -> TinyModel:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = qwen_tokenizer(corpus, vocab_size)
    text = dict(TEXT, vocab_size=len(tok), tie_word_embeddings=False, **text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    text.update(text_overrides or {})
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        patch_size=14,
        window_size=56,
        fullatt_block_indexes=[1],
    )
    vision.update(vision_overrides or {})
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **qwen_ids(tok))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    size = qwen_image_size(14, 2, max_side_tokens)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tok,
        chat_template=QWEN_VL_TEMPLATE,
    )
    return TinyModel(model, processor, "qwen2_5_vl")


register_family(Qwen2_5VLAdapter, build_qwen2_5_vl)
