"""Tiny random-weight models of each supported architecture, built offline.

Each builder returns a real transformers model (the family's own ``*ForConditionalGeneration``
class from a shrunken config) and a real processor whose tokenizer is trained locally with the
``tokenizers`` library and carries the family's special tokens and chat template. They exist
so that tests and benchmarks run every real code path without a download. The CLI accepts
them as ``tiny:<family>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, ProcessorMixin

from evostreaming.models import templates
from evostreaming.models.tokenizer import train_bpe_tokenizer

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

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


def _qwen_tokenizer(corpus=None, vocab_size: int = 600):
    return train_bpe_tokenizer(
        QWEN_SPECIALS,
        corpus=corpus,
        vocab_size=vocab_size,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )


def _qwen_ids(tok) -> dict[str, int]:
    return {
        "image_token_id": tok.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tok.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tok.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tok.convert_tokens_to_ids("<|vision_end|>"),
    }


def _text_ids(tok) -> dict[str, int | None]:
    return {"bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def _qwen_image_size(patch: int, merge: int, max_side_tokens: int = 4) -> dict[str, int]:
    # Pixel budget in the processor's own units: from 2x2 to max_side_tokens^2 merged tokens.
    unit = patch * merge
    return {"shortest_edge": (2 * unit) ** 2, "longest_edge": (max_side_tokens * unit) ** 2}


def build_qwen2_vl(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _qwen_tokenizer(corpus)
    text = dict(TEXT, vocab_size=len(tok), tie_word_embeddings=False, **_text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    text.update(text_overrides or {})
    vision = dict(depth=1, embed_dim=32, hidden_size=text["hidden_size"], num_heads=2, patch_size=14)
    vision.update(vision_overrides or {})
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **_qwen_ids(tok))
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    size = _qwen_image_size(14, 2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tok,
        chat_template=templates.QWEN_VL,
    )
    return TinyModel(model, processor, "qwen2_vl")


def build_qwen2_5_vl(
    seed: int = 0,
    *,
    corpus=None,
    text_overrides=None,
    vision_overrides=None,
    max_side_tokens: int = 4,
    vocab_size: int = 600,
) -> TinyModel:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _qwen_tokenizer(corpus, vocab_size)
    text = dict(TEXT, vocab_size=len(tok), tie_word_embeddings=False, **_text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    text.update(text_overrides or {})
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        patch_size=14,
        window_size=56,
        fullatt_block_indexes=[1],
    )
    vision.update(vision_overrides or {})
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **_qwen_ids(tok))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    size = _qwen_image_size(14, 2, max_side_tokens)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tok,
        chat_template=templates.QWEN_VL,
    )
    return TinyModel(model, processor, "qwen2_5_vl")


def build_qwen3_vl(
    seed: int = 0,
    *,
    corpus=None,
    text_overrides=None,
    vision_overrides=None,
    max_side_tokens: int = 4,
    vocab_size: int = 600,
    patch: int = 16,
    added_tokens: list[str] | None = None,
) -> TinyModel:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = _qwen_tokenizer(corpus, vocab_size)
    if added_tokens:
        tok.add_tokens(added_tokens)  # ordinary (non-special) tokens: decoding keeps them
    text = dict(TEXT, vocab_size=len(tok), head_dim=16, **_text_ids(tok))
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    text.update(text_overrides or {})
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        patch_size=patch,
        num_position_embeddings=64,
        deepstack_visual_indexes=[0],
    )
    vision.update(vision_overrides or {})
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **_qwen_ids(tok))
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    size = _qwen_image_size(patch, 2, max_side_tokens)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=patch, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=patch),
        tokenizer=tok,
        chat_template=templates.QWEN_VL,
    )
    return TinyModel(model, processor, "qwen3_vl")


INTERNVL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def build_internvl(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """InternVL 3.5 layout (InternViT + pixel-shuffle MLP + Qwen3 LM), transformers-native ``-hf`` format."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    tok = train_bpe_tokenizer(
        INTERNVL_SPECIALS,
        corpus=corpus,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        named_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<img>", "</img>", "<IMG_CONTEXT>", "<video>")}
    text = dict(TEXT, vocab_size=len(tok), head_dim=16, model_type="qwen3", **_text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    text.update(text_overrides or {})
    vision = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[56, 56],
        patch_size=[14, 14],
    )
    vision.update(vision_overrides or {})
    config = InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=4,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    size = {"height": 56, "width": 56}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tok,
        image_seq_length=4,
        chat_template=templates.INTERNVL,
    )
    return TinyModel(model, processor, "internvl")


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
    text = dict(TEXT, vocab_size=len(tok), model_type="qwen2", **_text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    text.update(text_overrides or {})
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=28,
        patch_size=14,
    )
    vision.update(vision_overrides or {})
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
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    size = {"height": 28, "width": 28}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tok,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        chat_template=templates.CHATML_IMAGE,
    )
    return TinyModel(model, processor, "llava_onevision")


SMOLVLM_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
    "<video>",
]


def build_smolvlm(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """SmolVLM2 layout (SigLIP + pixel-shuffle connector + Llama LM)."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tok = train_bpe_tokenizer(
        SMOLVLM_SPECIALS,
        corpus=corpus,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
    )
    text = dict(TEXT, vocab_size=len(tok), model_type="llama", **_text_ids(tok))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    text.update(text_overrides or {})
    vision = dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=56, patch_size=14
    )
    vision.update(vision_overrides or {})
    config = SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": 56}, max_image_size={"longest_edge": 56}, do_image_splitting=False
        ),
        video_processor=SmolVLMVideoProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 56}),
        tokenizer=tok,
        image_seq_len=4,
        chat_template=templates.SMOLVLM,
    )
    return TinyModel(model, processor, "smolvlm")


BUILDERS: dict[str, Callable[..., TinyModel]] = {
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen3_vl": build_qwen3_vl,
    "internvl": build_internvl,
    "llava_onevision": build_llava_onevision,
    "smolvlm": build_smolvlm,
}


def build_tiny(family: str, seed: int = 0, **kwargs) -> TinyModel:
    try:
        builder = BUILDERS[family]
    except KeyError:
        raise ValueError(f"no tiny model for family {family!r}; known: {', '.join(sorted(BUILDERS))}") from None
    return builder(seed, **kwargs)
