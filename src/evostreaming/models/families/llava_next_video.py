"""LLaVA-NeXT-Video (``llava_next_video``, e.g. llava-hf/LLaVA-NeXT-Video-7B-hf) and LLaVA-NeXT
(``llava_next``): anyres tiles like LLaVA-OneVision (its adapter: the tile axis padded across frames),
1D RoPE, turns from the checkpoint's template."""

from __future__ import annotations

from evostreaming.models.families.llava_onevision import LlavaOnevisionAdapter
from evostreaming.models.family import register_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config
from evostreaming.models.tokenizer import train_bpe_tokenizer


class LlavaNextVideoAdapter(LlavaOnevisionAdapter):
    family = "llava_next_video"
    model_types = ("llava_next_video", "llava_next")


def build_llava_next_video(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """LLaVA-NeXT-Video layout: CLIP (its CLS token dropped) + anyres + a Llama LM, ``-hf`` format."""
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    tok = train_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
        corpus=corpus,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    text = text_config(tok, rope(), text_overrides, model_type="llama")
    vision = vision_config(28, vision_overrides, model_type="clip_vision_model")
    pinpoints = [[28, 28], [28, 56], [56, 28], [56, 56]]
    config = LlavaNextVideoConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=4,
    )
    size, crop = {"shortest_edge": 28}, {"height": 28, "width": 28}
    processor = LlavaNextVideoProcessor(
        image_processor=LlavaNextImageProcessor(size=size, crop_size=crop, image_grid_pinpoints=pinpoints),
        video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chatml("<image>\n"),
    )
    return instantiate("llava_next_video", LlavaNextVideoForConditionalGeneration, config, processor, seed)


register_family(LlavaNextVideoAdapter, build_llava_next_video)
