"""Qwen2.5-VL: Qwen2-VL's turn format and M-RoPE (``qwen2_vl.QwenVLAdapter``), a windowed vision tower."""

from __future__ import annotations

from evostreaming.models.families import qwen2_vl
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated


class Qwen2_5VLAdapter(qwen2_vl.QwenVLAdapter):
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

    tok = qwen2_vl.qwen_tokenizer(corpus, vocab_size)
    text = text_config(
        tok,
        rope(mrope_section=[2, 3, 3]),
        text_overrides,
        tie_word_embeddings=False,
    )
    vision = updated(
        dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            patch_size=14,
            window_size=56,
            fullatt_block_indexes=[1],
        ),
        vision_overrides,
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **qwen2_vl.qwen_ids(tok))
    size = qwen2_vl.qwen_image_size(14, 2, max_side_tokens)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tok,
        chat_template=qwen2_vl.QWEN_VL_TEMPLATE,
    )
    return instantiate("qwen2_5_vl", Qwen2_5_VLForConditionalGeneration, config, processor, seed)


register_family(Qwen2_5VLAdapter, build_qwen2_5_vl)
