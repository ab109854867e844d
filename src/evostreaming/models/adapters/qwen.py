"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: ChatML turns and multimodal RoPE (M-RoPE).

Offline, these models give text tokens one position each (the same in the t/h/w axes) and
give an image's tokens a (t, h, w) grid starting at the current position; the next text token
starts after the largest position used. Because that computation runs left to right, the
model's own ``get_rope_index`` on a segment, shifted by the position where the segment
starts, reproduces the whole-conversation positions exactly.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapters.base import EncodedSegment, FamilyAdapter


class QwenVLAdapter(FamilyAdapter):
    family = "qwen2_vl"
    model_types = ("qwen2_vl",)
    image_keys = ("pixel_values", "image_grid_thw")

    def frame(self) -> str:
        return "<|vision_start|><|image_pad|><|vision_end|>"

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


class Qwen2_5VLAdapter(QwenVLAdapter):
    family = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)


class Qwen3VLAdapter(QwenVLAdapter):
    family = "qwen3_vl"
    model_types = ("qwen3_vl",)
