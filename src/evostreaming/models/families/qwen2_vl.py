"""Qwen2-VL: ChatML turns and multimodal RoPE (M-RoPE); the base of the Qwen2.5-VL and Qwen3-VL families.

Offline, these models give text tokens one position each (the same in the t/h/w axes) and
give an image's tokens a (t, h, w) grid starting at the current position; the next text token
starts after the largest position used. Because that computation runs left to right, the
model's own ``get_rope_index`` on a segment, shifted by the position where the segment
starts, reproduces the whole-conversation positions exactly.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapter import EncodedSegment, FamilyAdapter
from evostreaming.models.family import register_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated
from evostreaming.models.tokenizer import train_bpe_tokenizer

QWEN_VL_TEMPLATE = chatml("<|vision_start|><|image_pad|><|vision_end|>")

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def qwen_tokenizer(corpus=None, vocab_size: int = 600):
    return train_bpe_tokenizer(
        QWEN_SPECIALS,
        corpus=corpus,
        vocab_size=vocab_size,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )


def qwen_ids(tok) -> dict[str, int]:
    return {
        "image_token_id": tok.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tok.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tok.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tok.convert_tokens_to_ids("<|vision_end|>"),
    }


def qwen_image_size(patch: int, merge: int, max_side_tokens: int = 4) -> dict[str, int]:
    # Pixel budget in the processor's own units: from 2x2 to max_side_tokens^2 merged tokens.
    unit = patch * merge
    return {"shortest_edge": (2 * unit) ** 2, "longest_edge": (max_side_tokens * unit) ** 2}


class QwenVLAdapter(FamilyAdapter):
    family = "qwen2_vl"
    model_types = ("qwen2_vl",)
    image_keys = ("pixel_values", "image_grid_thw")
    positions_scheme = "mrope"

    def frame(self) -> str:
        if self.turns:
            return super().frame()
        return "<|vision_start|><|image_pad|><|vision_end|>"

    def frame_budget(self, processor, tokens: int) -> dict:
        """Each merged token covers (patch x merge)^2 pixels: the pixel range for at most ``tokens``."""
        ip = processor.image_processor
        unit = ip.patch_size * ip.merge_size
        most = tokens * unit * unit
        return {"size": {"shortest_edge": min(ip.size["shortest_edge"], most), "longest_edge": most}}

    def _token_types(self, model, input_ids: torch.Tensor) -> torch.Tensor:
        cfg = model.config
        types = torch.zeros_like(input_ids, dtype=torch.int)
        types[input_ids == cfg.image_token_id] = 1
        types[input_ids == cfg.video_token_id] = 2
        return types

    def positions(self, model, segment: EncodedSegment, start: int) -> tuple[torch.Tensor, int]:
        ids = segment.input_ids
        grid = segment.mm_kwargs.get("image_grid_thw")
        if grid is None:
            n = ids.shape[0]
            return torch.arange(start, start + n).unsqueeze(0).expand(3, -1), start + n
        pos, _ = model.model.get_rope_index(
            ids.unsqueeze(0), mm_token_type_ids=self._token_types(model, ids).unsqueeze(0), image_grid_thw=grid
        )
        pos = pos[:, 0, :] + start
        return pos, int(pos.max()) + 1

    def forward_position_ids(self, positions: torch.Tensor) -> torch.Tensor:
        if positions.shape[0] == 1:
            positions = positions.expand(3, -1)
        return positions.unsqueeze(1)  # (3, batch=1, seq)

    def offline_inputs(self, model, input_ids, mm):
        return {
            "input_ids": input_ids.unsqueeze(0),
            "mm_token_type_ids": self._token_types(model, input_ids).unsqueeze(0),
            **mm,
        }


def build_qwen2_vl(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = qwen_tokenizer(corpus)
    text = text_config(
        tok,
        rope(mrope_section=[2, 3, 3]),
        text_overrides,
        tie_word_embeddings=False,
    )
    vision = updated(
        dict(depth=1, embed_dim=32, hidden_size=text["hidden_size"], num_heads=2, patch_size=14), vision_overrides
    )
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **qwen_ids(tok))
    size = qwen_image_size(14, 2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tok,
        chat_template=QWEN_VL_TEMPLATE,
    )
    return instantiate("qwen2_vl", Qwen2VLForConditionalGeneration, config, processor, seed)


register_family(QwenVLAdapter, build_qwen2_vl)
