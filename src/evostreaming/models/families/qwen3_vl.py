"""Qwen3-VL: Qwen2-VL's turn format and M-RoPE (``qwen2_vl.QwenVLAdapter``), interleaved M-RoPE and DeepStack."""

from __future__ import annotations

from evostreaming.models.families import qwen2_vl
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated


class Qwen3VLAdapter(qwen2_vl.QwenVLAdapter):
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

    tok = qwen2_vl.qwen_tokenizer(corpus, vocab_size)
    if added_tokens:
        tok.add_tokens(added_tokens)  # ordinary (non-special) tokens: decoding keeps them
    text = text_config(
        tok,
        rope(mrope_section=[2, 3, 3], mrope_interleaved=True),
        text_overrides,
        head_dim=16,
    )
    vision = updated(
        dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            patch_size=patch,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        vision_overrides,
    )
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **qwen2_vl.qwen_ids(tok))
    size = qwen2_vl.qwen_image_size(patch, 2, max_side_tokens)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=patch, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=patch),
        tokenizer=tok,
        chat_template=qwen2_vl.QWEN_VL_TEMPLATE,
    )
    return instantiate("qwen3_vl", Qwen3VLForConditionalGeneration, config, processor, seed)


register_family(Qwen3VLAdapter, build_qwen3_vl)
