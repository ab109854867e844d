"""LLaVA (transformers' ``llava``: LLaVA-1.5, LLaVA-Interleave with a Qwen LM, which reads video as
interleaved frames). A standard family: no adapter code, the turns come from the checkpoint's
template (``register_standard_family``)."""

from __future__ import annotations

from evostreaming.models.family import register_standard_family
from evostreaming.models.templates import chatml
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config
from evostreaming.models.tokenizer import train_bpe_tokenizer


def build_llava(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """LLaVA-Interleave layout: SigLIP + 2-layer MLP projector + Qwen2 LM, ChatML turns."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessor

    tok = train_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
        corpus=corpus,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    text = text_config(tok, rope(), text_overrides, model_type="qwen2")
    vision = vision_config(28, vision_overrides, model_type="siglip_vision_model")
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_seq_length=4,
    )
    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": 28, "width": 28}),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=chatml("<image>\n"),
    )
    return instantiate("llava", LlavaForConditionalGeneration, config, processor, seed)


register_standard_family("llava", ("llava",), build_llava)
