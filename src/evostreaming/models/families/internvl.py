"""InternVL (transformers-native ``-hf`` checkpoints, e.g. InternVL3.5): ChatML, 1D RoPE.

An image is written ``<IMG_CONTEXT>\\n`` in the prompt; the processor expands it to
``<img><IMG_CONTEXT>*N</img>``.
"""

from __future__ import annotations

from evostreaming.models.adapter import FamilyAdapter
from evostreaming.models.family import register_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, updated
from evostreaming.models.tokenizer import train_bpe_tokenizer


class InternVLAdapter(FamilyAdapter):
    family = "internvl"
    model_types = ("internvl",)
    image_keys = ("pixel_values",)

    def processor_kwargs(self):
        # One tile per frame, as InternVL reads video. InternVLProcessor's call-time default tiles a
        # 16:9 frame into two crops and a thumbnail (3 x 256 tokens) whatever the image processor says.
        return {"crop_to_patches": False}

    def frame(self) -> str:
        if self.turns:
            return super().frame()
        return "<IMG_CONTEXT>\n"


TEMPLATE = chatml("<IMG_CONTEXT>\n")

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
    text = text_config(tok, rope(), text_overrides, head_dim=16, model_type="qwen3")
    vision = updated(
        dict(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=[56, 56],
            patch_size=[14, 14],
        ),
        vision_overrides,
    )
    config = InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=4,
        tie_word_embeddings=False,
    )
    size = {"height": 56, "width": 56}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tok,
        image_seq_length=4,
        chat_template=TEMPLATE,
    )
    return instantiate("internvl", InternVLForConditionalGeneration, config, processor, seed)


register_family(InternVLAdapter, build_internvl)
