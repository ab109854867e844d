"""LLaVA-OneVision (transformers-native ``-hf`` checkpoints): ChatML on Qwen2, 1D RoPE, anyres tiles.

An image is written ``<image>\\n``; the processor expands it to as many tokens as its anyres
tiling needs, so frames of different sizes take different numbers of tokens.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapter import FamilyAdapter
from evostreaming.models.family import register_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config
from evostreaming.models.tokenizer import train_bpe_tokenizer


class LlavaOnevisionAdapter(FamilyAdapter):
    family = "llava_onevision"
    model_types = ("llava_onevision",)
    image_keys = ("pixel_values", "image_sizes")

    def frame(self) -> str:
        if self.turns:
            return super().frame()
        return "<image>\n"

    def merge_mm(self, parts):
        parts = [p for p in parts if p]
        if not parts:
            return {}
        # pixel_values are (images, tiles, C, H, W); pad the tile axis (the model reads image_sizes).
        tiles = max(p["pixel_values"].shape[1] for p in parts)
        padded = []
        for p in parts:
            pv = p["pixel_values"]
            if pv.shape[1] < tiles:
                pad = torch.zeros((pv.shape[0], tiles - pv.shape[1], *pv.shape[2:]), dtype=pv.dtype)
                pv = torch.cat([pv, pad], dim=1)
            padded.append(pv)
        return {"pixel_values": torch.cat(padded), "image_sizes": torch.cat([p["image_sizes"] for p in parts])}


TEMPLATE = chatml("<image>\n")

LLAVA_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


def build_llava_onevision(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """LLaVA-OneVision layout (SigLIP + anyres + Qwen2 LM), transformers-native ``-hf`` format."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tok = train_bpe_tokenizer(LLAVA_SPECIALS, corpus=corpus, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    image_id, video_id = tok.convert_tokens_to_ids("<image>"), tok.convert_tokens_to_ids("<video>")
    text = text_config(tok, rope(), text_overrides, model_type="qwen2")
    vision = vision_config(28, vision_overrides, model_type="siglip_vision_model")
    pinpoints = [[28, 28], [28, 56], [56, 28], [56, 56]]
    config = LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=image_id,
        video_token_index=video_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    size = {"height": 28, "width": 28}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tok,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        chat_template=TEMPLATE,
    )
    return instantiate("llava_onevision", LlavaOnevisionForConditionalGeneration, config, processor, seed)


register_family(LlavaOnevisionAdapter, build_llava_onevision)
