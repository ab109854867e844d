"""Qwen3.5 (dense and MoE): Qwen3-VL's turns and interleaved M-RoPE over a *hybrid* text tower.

Three of every four decoder layers are Gated-DeltaNet linear attention: a short causal convolution
and a recurrent state of fixed size, no keys or values. One in four is full attention with a
growing KV cache and partial RoPE (a quarter of each head's dimensions rotate). What that means for
the session (docs/streaming.md, "hybrid models"):

* a speculative decision is undone by restoring the linear layers' states saved before it (their
  recurrent state cannot be cropped) and cropping the full-attention layers' keys as usual;
* bounded memory evicts frames from the full-attention layers only; the linear layers' constant-size
  state has absorbed every frame seen and keeps it (``hybrid_memory``).
"""

from __future__ import annotations

from evostreaming.models.families import qwen2_vl
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated

LINEAR = r"linear_attn\.(in_proj_qkv|in_proj_z|in_proj_b|in_proj_a|out_proj)"
FULL = r"self_attn\.(q_proj|k_proj|v_proj|o_proj)"
MLP = r"mlp\.(gate_proj|up_proj|down_proj)"


class Qwen3_5Adapter(qwen2_vl.QwenVLAdapter):
    family = "qwen3_5"
    model_types = ("qwen3_5",)
    hybrid_memory = True
    # attention, linear-attention and MLP projections of the language model
    lora_target_regex = rf".*language_model.*\.({FULL}|{LINEAR}|{MLP})"


def _hybrid_text(tok, text_overrides, **extra) -> dict:
    return text_config(
        tok,
        rope(mrope_section=[2, 1, 1], mrope_interleaved=True, partial_rotary_factor=0.25),
        {"num_hidden_layers": 4, **(text_overrides or {})},
        head_dim=32,
        layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
        linear_conv_kernel_dim=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        **extra,
    )


def build_hybrid(family: str, config_cls, model_cls, text: dict, vision_overrides, tok, seed: int) -> TinyModel:
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    vision = updated(
        dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            patch_size=16,
            num_position_embeddings=64,
        ),
        vision_overrides,
    )
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=False, **qwen2_vl.qwen_ids(tok))
    size = qwen2_vl.qwen_image_size(16, 2)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=16),
        tokenizer=tok,
        chat_template=qwen2_vl.QWEN_VL_TEMPLATE,
    )
    return instantiate(family, model_cls, config, processor, seed)


def build_qwen3_5(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    tok = qwen2_vl.qwen_tokenizer(corpus)
    text = _hybrid_text(tok, text_overrides)
    return build_hybrid("qwen3_5", Qwen3_5Config, Qwen3_5ForConditionalGeneration, text, vision_overrides, tok, seed)


register_family(Qwen3_5Adapter, build_qwen3_5)
