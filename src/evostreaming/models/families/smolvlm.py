"""SmolVLM2 (Idefics3 layout on a Llama LM): "User:<image>text<end_of_utterance>\\nAssistant: reply", 1D RoPE.

The processor expands ``<image>`` to ``<fake_token_around_image><global-img><image>*N<fake_token_around_image>``
(frames are not split into tiles unless the processor is configured to). Pixel tensors carry the
images on axis 1, so several frames merge along that axis.
"""

from __future__ import annotations

import torch

from evostreaming.models.adapter import FamilyAdapter
from evostreaming.models.family import register_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config
from evostreaming.models.tokenizer import train_bpe_tokenizer


class SmolVLMAdapter(FamilyAdapter):
    family = "smolvlm"
    model_types = ("smolvlm",)
    image_keys = ("pixel_values", "pixel_attention_mask")

    def system(self, prompt: str) -> str:
        if self.turns:
            return super().system(prompt)
        return f"<|im_start|>System: {prompt}<end_of_utterance>\n"

    def user_open(self) -> str:
        if self.turns:
            return super().user_open()
        return "User:"

    def frame(self) -> str:
        if self.turns:
            return super().frame()
        return "<image>"

    def assistant_open(self) -> str:
        if self.turns:
            return super().assistant_open()
        return "<end_of_utterance>\nAssistant:"

    def reply_text(self, text: str) -> str:
        if self.turns:
            return super().reply_text(text)
        return f" {text}"

    def assistant_close(self) -> str:
        if self.turns:
            return super().assistant_close()
        return "<end_of_utterance>\n"

    def end_of_turn_ids(self, tokenizer) -> set[int]:
        return {tokenizer.convert_tokens_to_ids("<end_of_utterance>")}

    lora_target_regex = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

    def text_model(self, model):
        return model.model.text_model

    def processor_kwargs(self):
        return {"do_image_splitting": False}

    def merge_mm(self, parts):
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}


# SmolVLM2 / Idefics3: "User:<image>text<end_of_utterance>\nAssistant: text<end_of_utterance>\n".
TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

SMOLVLM_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
    "<video>",
]


def tiny_tokenizer(corpus=None):
    """The tiny twins' BPE with SmolVLM's specials (Idefics3 shares them)."""
    ends = dict(bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|endoftext|>")
    return train_bpe_tokenizer(SMOLVLM_SPECIALS, corpus=corpus, **ends)


def build_smolvlm(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    """SmolVLM2 layout (SigLIP + pixel-shuffle connector + Llama LM)."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tok = tiny_tokenizer(corpus)
    text = text_config(tok, rope(), text_overrides, model_type="llama")
    vision = vision_config(56, vision_overrides)
    config = SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": 56}, max_image_size={"longest_edge": 56}, do_image_splitting=False
        ),
        video_processor=SmolVLMVideoProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 56}),
        tokenizer=tok,
        image_seq_len=4,
        chat_template=TEMPLATE,
    )
    return instantiate("smolvlm", SmolVLMForConditionalGeneration, config, processor, seed)


register_family(SmolVLMAdapter, build_smolvlm)
