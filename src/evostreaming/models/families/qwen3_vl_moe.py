"""Qwen3-VL-MoE (e.g. Qwen3-VL-30B-A3B): Qwen3-VL's turns, interleaved M-RoPE and DeepStack over a
mixture-of-experts text tower. Nothing differs for streaming but the model type."""

from __future__ import annotations

from evostreaming.models.families import qwen2_vl
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated


class Qwen3VLMoeAdapter(qwen2_vl.QwenVLAdapter):
    family = "qwen3_vl_moe"
    model_types = ("qwen3_vl_moe",)
    lora_target_regex = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
    lora_target_parameters = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")  # the fused experts


def build_qwen3_vl_moe(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLMoeConfig,
        Qwen3VLMoeForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = qwen2_vl.qwen_tokenizer(corpus)
    text = text_config(
        tok,
        rope(mrope_section=[2, 3, 3], mrope_interleaved=True),
        text_overrides,
        head_dim=16,
        num_local_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        decoder_sparse_step=1,
    )
    vision = updated(
        dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            patch_size=16,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        vision_overrides,
    )
    config = Qwen3VLMoeConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=False, **qwen2_vl.qwen_ids(tok)
    )
    size = qwen2_vl.qwen_image_size(16, 2)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=16),
        tokenizer=tok,
        chat_template=qwen2_vl.QWEN_VL_TEMPLATE,
    )
    return instantiate("qwen3_vl_moe", Qwen3VLMoeForConditionalGeneration, config, processor, seed)


register_family(Qwen3VLMoeAdapter, build_qwen3_vl_moe)
