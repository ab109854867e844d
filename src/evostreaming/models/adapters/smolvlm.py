"""SmolVLM2 (Idefics3 layout on a Llama LM): "User:<image>text<end_of_utterance>\\nAssistant: reply", 1D RoPE.

The processor expands ``<image>`` to ``<fake_token_around_image><global-img><image>*N<fake_token_around_image>``
(frames are not split into tiles unless the processor is configured to). Pixel tensors carry the
images on axis 1, so several frames merge along that axis.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapters.base import FamilyAdapter


class SmolVLMAdapter(FamilyAdapter):
    family = "smolvlm"
    model_types = ("smolvlm",)
    image_keys = ("pixel_values", "pixel_attention_mask")

    def system(self, prompt: str) -> str:
        return f"<|im_start|>System: {prompt}<end_of_utterance>\n"

    def user_open(self) -> str:
        return "User:"

    def frame(self) -> str:
        return "<image>"

    def assistant_open(self) -> str:
        return "<end_of_utterance>\nAssistant:"

    def reply_text(self, text: str) -> str:
        return f" {text}"

    def assistant_close(self) -> str:
        return "<end_of_utterance>\n"

    def end_of_turn_ids(self, tokenizer) -> set[int]:
        return {tokenizer.convert_tokens_to_ids("<end_of_utterance>")}

    lora_target_regex = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

    def text_model(self, model):
        return model.model.text_model

    def processor_kwargs(self):
        return {"do_image_splitting": False}

    def merge_mm(self, parts):
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}
