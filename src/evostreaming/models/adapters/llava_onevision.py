"""LLaVA-OneVision (transformers-native ``-hf`` checkpoints): ChatML on Qwen2, 1D RoPE, anyres tiles.

An image is written ``<image>\\n``; the processor expands it to as many tokens as its anyres
tiling needs, so frames of different sizes take different numbers of tokens.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapters.base import FamilyAdapter


class LlavaOnevisionAdapter(FamilyAdapter):
    family = "llava_onevision"
    model_types = ("llava_onevision",)
    image_keys = ("pixel_values", "image_sizes")

    def frame(self) -> str:
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
