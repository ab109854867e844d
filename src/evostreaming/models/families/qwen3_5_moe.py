"""Qwen3.5-MoE (e.g. Qwen3.5-35B-A3B): Qwen3.5's hybrid tower (``qwen3_5``) with mixture-of-experts MLPs.
Streaming is the dense model's; LoRA also reaches the experts' and shared expert's projections."""

from __future__ import annotations

from evostreaming.models.families import qwen2_vl, qwen3_5
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel

EXPERTS = r"mlp\.(experts\.\d+\.|shared_expert\.)?(gate_proj|up_proj|down_proj)"


class Qwen3_5MoeAdapter(qwen3_5.Qwen3_5Adapter):
    family = "qwen3_5_moe"
    model_types = ("qwen3_5_moe",)
    lora_target_regex = rf".*language_model.*\.({qwen3_5.FULL}|{qwen3_5.LINEAR}|{EXPERTS})"
    lora_target_parameters = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def build_qwen3_5_moe(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

    tok = qwen2_vl.qwen_tokenizer(corpus)
    text = qwen3_5._hybrid_text(
        tok,
        text_overrides,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
    )
    text.pop("intermediate_size", None)  # every MLP is a mixture of experts
    return qwen3_5.build_hybrid(
        "qwen3_5_moe", Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration, text, vision_overrides, tok, seed
    )


register_family(Qwen3_5MoeAdapter, build_qwen3_5_moe)
