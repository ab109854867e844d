"""Tiny random-weight models of each supported architecture, built offline: the shared pieces.

Each family file (``models/families/<family>.py``) holds its own builder, which returns a real
transformers model (the family's own ``*ForConditionalGeneration`` class from a shrunken config)
and a real processor whose tokenizer is trained locally with the ``tokenizers`` library and carries
the family's special tokens and chat template. They exist so that tests and benchmarks run every
real code path without a download. The CLI accepts them as ``tiny:<family>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, ProcessorMixin

# Small text tower shared by every tiny model: 2 layers, 4 heads of 16 dims.
TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
)


@dataclass
class TinyModel:
    model: PreTrainedModel
    processor: ProcessorMixin
    family: str


def rope(**extra) -> dict:
    """Default RoPE parameters (a fresh dict: configs keep what they are given)."""
    return {"rope_type": "default", "rope_theta": 10000.0, **extra}


def text_ids(tok) -> dict[str, int | None]:
    return {"bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def text_config(tok, rope: dict, overrides: dict | None = None, **extra) -> dict:
    """The tiny text tower sized to ``tok``, with the family's RoPE and settings, then the caller's overrides."""
    text = dict(TEXT, vocab_size=len(tok), **extra, **text_ids(tok))
    text["rope_parameters"] = rope
    text.update(overrides or {})
    return text


def updated(base: dict, overrides: dict | None) -> dict:
    return {**base, **(overrides or {})}


def vision_config(image_size: int, overrides: dict | None = None, **extra) -> dict:
    """The tiny ViT tower the SigLIP/CLIP-based families share (one layer, 32 wide, 14-pixel patches,
    ``image_size`` pixels), with the family's ``extra`` keys (e.g. ``model_type``), then the caller's overrides."""
    base = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=image_size)
    return updated(dict(**extra, **base, patch_size=14), overrides)


def instantiate(family: str, model_cls, config, processor, seed: int) -> TinyModel:
    """The model with weights drawn from ``seed``, paired with its processor."""
    torch.manual_seed(seed)
    return TinyModel(model_cls(config).eval(), processor, family)


def build_tiny(family: str, seed: int = 0, **kwargs) -> TinyModel:
    """The tiny twin of a registered family (``tiny:<family>``)."""
    from evostreaming.models.family import FAMILIES

    if family not in FAMILIES:
        raise ValueError(f"no tiny model for family {family!r}; known: {', '.join(FAMILIES.names())}")
    return FAMILIES.get(family).build_tiny(seed, **kwargs)
