"""Idefics3 (``idefics3``, e.g. HuggingFaceM4/Idefics3-8B-Llama3): SmolVLM's layout and turn format
(SmolVLM is built on it), on its own model type; SmolVLM's adapter (frames merged on the image axis)."""

from __future__ import annotations

from evostreaming.models.families import smolvlm
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config


class Idefics3Adapter(smolvlm.SmolVLMAdapter):
    family = "idefics3"
    model_types = ("idefics3",)


def build_idefics3(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    tok = smolvlm.tiny_tokenizer(corpus)
    text = text_config(tok, rope(), text_overrides, model_type="llama")
    vision = vision_config(56, vision_overrides)
    config = Idefics3Config(
        text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2
    )
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            size={"longest_edge": 56}, max_image_size={"longest_edge": 56}, do_image_splitting=False
        ),
        tokenizer=tok,
        image_seq_len=4,
        chat_template=smolvlm.TEMPLATE,
    )
    return instantiate("idefics3", Idefics3ForConditionalGeneration, config, processor, seed)


register_family(Idefics3Adapter, build_idefics3)
