"""MiniCPM-V 4.7 (``minicpmv4_7``): MiniCPM-V 4.6's towers (``families/minicpmv4_6.py``: NaViT frames,
hybrid Qwen3.5 text) with "canvas" M-RoPE: an image's tokens get (t, h, w) positions on its patch grid,
computed by the model's own ``get_rope_index`` from the token types, the image markers and
``target_sizes``. A frame is a group of its own in a stream (text separates frames), so a segment's
positions, shifted to where it starts, are the whole conversation's (tested; see ``positions`` for the
one subtlety)."""

from __future__ import annotations

import torch

from evostreaming.models.adapter import EncodedSegment
from evostreaming.models.families import minicpmv4_6, qwen2_vl
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate


class MiniCPMV4_7Adapter(minicpmv4_6.MiniCPMV4_6Adapter):
    family = "minicpmv4_7"
    model_types = ("minicpmv4_7",)
    positions_scheme = "mrope"

    def _token_types(self, model, input_ids: torch.Tensor) -> torch.Tensor:
        types = torch.zeros_like(input_ids, dtype=torch.int)
        types[input_ids == model.config.image_token_id] = 1
        return types

    def positions(self, model, segment: EncodedSegment, start: int) -> tuple[torch.Tensor, int]:
        ids = segment.input_ids
        sizes = segment.mm_kwargs.get("target_sizes")
        if sizes is None:
            n = ids.shape[0]
            return torch.arange(start, start + n).unsqueeze(0).expand(3, -1), start + n
        # The marker that opens an image sits one step before its canvas on the h and w axes (its
        # "halo"); at a sequence's very start that would be -1 and is clamped to 0. One text token in
        # front keeps the segment's positions those of the whole conversation; it is then dropped.
        cfg = model.config
        markers = {cfg.image_token_id, cfg.image_start_id, cfg.image_end_id, cfg.slice_start_id, cfg.slice_end_id}
        markers.add(cfg.newline_id)
        lead = torch.tensor([next(i for i in range(len(markers) + 1) if i not in markers)], dtype=ids.dtype)
        padded = torch.cat([lead, ids])
        pos, _ = model.model.get_rope_index(
            padded.unsqueeze(0), mm_token_type_ids=self._token_types(model, padded).unsqueeze(0), target_sizes=sizes
        )
        pos = pos[:, 0, 1:] - 1 + start
        return pos, int(pos.max()) + 1

    # (3, batch, seq) positions and the offline call with token types: as the Qwen-VL adapter does
    forward_position_ids = qwen2_vl.QwenVLAdapter.forward_position_ids
    offline_inputs = qwen2_vl.QwenVLAdapter.offline_inputs


def build_minicpmv4_7(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        MiniCPMV4_6ImageProcessor,
        MiniCPMV4_6VideoProcessor,
        MiniCPMV4_7Config,
        MiniCPMV4_7ForConditionalGeneration,
        MiniCPMV4_7Processor,
    )

    tok, text, vision, ids = minicpmv4_6.tiny_parts(corpus, text_overrides, vision_overrides)
    markers = {
        "image_start_id": tok.convert_tokens_to_ids("<image>"),
        "image_end_id": tok.convert_tokens_to_ids("</image>"),
        "slice_start_id": tok.convert_tokens_to_ids("<slice>"),
        "slice_end_id": tok.convert_tokens_to_ids("</slice>"),
        "newline_id": tok("\n", add_special_tokens=False)["input_ids"][0],
    }
    config = MiniCPMV4_7Config(
        text_config=text, vision_config=vision, insert_layer_id=0, image_size=112, **ids, **markers
    )
    view = dict(scale_resolution=112, patch_size=14, slice_mode=False)
    processor = MiniCPMV4_7Processor(
        image_processor=MiniCPMV4_6ImageProcessor(**view, use_image_id=False),
        video_processor=MiniCPMV4_6VideoProcessor(**view),
        tokenizer=tok,
        chat_template=minicpmv4_6.TEMPLATE,
    )
    return instantiate("minicpmv4_7", MiniCPMV4_7ForConditionalGeneration, config, processor, seed)


register_family(MiniCPMV4_7Adapter, build_minicpmv4_7)
