"""MiniCPM-V 4.6 (transformers-native ``minicpmv4_6``): a SigLIP-style NaViT tower with window-attention
and MLP mergers over Qwen3.5's hybrid text tower (``qwen3_5_text``: linear attention, see
``families/qwen3_5.py`` and docs/streaming.md), 1D positions.

Family differences:
* the processor packs a frame's patches NaViT-style along the last axis (``pixel_values`` of shape
  ``(1, C, patch, L)``) with one ``target_sizes`` row per image: frames merge by concatenating there;
* frames are streamed whole (``slice_mode`` off: one 448-pixel view, as MiniCPM-V reads video frames)
  and without local image ids (``use_image_id=False``): the processor numbers images within one call,
  and a stream encodes each frame alone, so ids would all read 1 where an offline call counts up.

MiniCPM-V 4.5 and earlier ship remote code only: ``--trust-remote-code`` loads them through
transformers' Auto classes, but no adapter streams them (docs/gpu.md).
"""

from __future__ import annotations

import torch

from evostreaming.models.adapter import FamilyAdapter
from evostreaming.models.families import qwen3_5
from evostreaming.models.family import register_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, updated
from evostreaming.models.tokenizer import train_bpe_tokenizer

NAMED = {
    "image_token": "<unk>",
    "video_token": "<video_unk>",
    "image_start_token": "<image>",
    "image_end_token": "</image>",
    "slice_start_token": "<slice>",
    "slice_end_token": "</slice>",
    "image_id_start_token": "<image_id>",
    "image_id_end_token": "</image_id>",
}
TEMPLATE = chatml("<unk>\n")


class MiniCPMV4_6Adapter(FamilyAdapter):
    family = "minicpmv4_6"
    model_types = ("minicpmv4_6",)
    image_keys = ("pixel_values", "target_sizes")
    hybrid_memory = True
    lora_target_regex = qwen3_5.Qwen3_5Adapter.lora_target_regex

    def frame(self) -> str:
        if self.turns:
            return super().frame()
        return "<unk>\n"

    def processor_kwargs(self):
        return {"use_image_id": False}

    def merge_mm(self, parts):
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {
            "pixel_values": torch.cat([p["pixel_values"] for p in parts], dim=-1),  # NaViT packing
            "target_sizes": torch.cat([p["target_sizes"] for p in parts]),
        }


def tiny_parts(corpus=None, text_overrides=None, vision_overrides=None):
    """Tokenizer, text and vision configs and processor parts shared by the MiniCPM-V twins."""
    tok = train_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *NAMED.values()],
        corpus=corpus,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        named_tokens=NAMED,
    )
    text = qwen3_5._hybrid_text(tok, text_overrides, model_type="qwen3_5_text")
    vision = updated(
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=112,
            patch_size=14,
        ),
        vision_overrides,
    )
    ids = {"image_token_id": tok.image_token_id, "video_token_id": tok.convert_tokens_to_ids("<video_unk>")}
    return tok, text, vision, ids


def build_minicpmv4_6(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        MiniCPMV4_6Config,
        MiniCPMV4_6ForConditionalGeneration,
        MiniCPMV4_6ImageProcessor,
        MiniCPMV4_6Processor,
        MiniCPMV4_6VideoProcessor,
    )

    tok, text, vision, ids = tiny_parts(corpus, text_overrides, vision_overrides)
    config = MiniCPMV4_6Config(text_config=text, vision_config=vision, insert_layer_id=0, image_size=112, **ids)
    view = dict(scale_resolution=112, patch_size=14, slice_mode=False)
    processor = MiniCPMV4_6Processor(
        image_processor=MiniCPMV4_6ImageProcessor(**view, use_image_id=False),
        video_processor=MiniCPMV4_6VideoProcessor(**view),
        tokenizer=tok,
        chat_template=TEMPLATE,
    )
    return instantiate("minicpmv4_6", MiniCPMV4_6ForConditionalGeneration, config, processor, seed)


register_family(MiniCPMV4_6Adapter, build_minicpmv4_6)
