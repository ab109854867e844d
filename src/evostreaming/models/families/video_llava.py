"""Video-LLaVA (``video_llava``, e.g. LanguageBind/Video-LLaVA-7B-hf): a video-first LLaVA (CLIP towers,
a Vicuna/Llama LM). A standard family: no adapter code, the turns come from the checkpoint's template."""

from __future__ import annotations

from evostreaming.models.family import register_standard_family
from evostreaming.models.tiny import TinyModel, instantiate, rope, text_config, vision_config
from evostreaming.models.tokenizer import train_bpe_tokenizer

# Video-LLaVA's conversation: "USER: <image>\n... ASSISTANT: reply</s>" (Vicuna style)
TEMPLATE = (
    "{% macro text(content) %}{% if content is string %}{{ content }}{% else %}"
    "{% for item in content %}{% if item['type'] == 'image' %}<image>\n{% else %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endmacro %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ text(message['content']) }}\n"
    "{% elif message['role'] == 'user' %}USER: {{ text(message['content']) }} ASSISTANT:"
    "{% else %} {{ text(message['content']) }}</s>{% endif %}"
    "{% endfor %}"
)


def build_video_llava(seed: int = 0, *, corpus=None, text_overrides=None, vision_overrides=None) -> TinyModel:
    from transformers import (
        VideoLlavaConfig,
        VideoLlavaForConditionalGeneration,
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    tok = train_bpe_tokenizer(
        ["<unk>", "<s>", "</s>", "<image>", "<video>"], corpus=corpus, eos_token="</s>", pad_token="<unk>"
    )
    text = text_config(tok, rope(), text_overrides, model_type="llama")
    vision = vision_config(28, vision_overrides, model_type="clip_vision_model")
    config = VideoLlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=4,
        video_seq_length=8,
    )
    size, crop = {"shortest_edge": 28}, {"height": 28, "width": 28}
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(size=size, crop_size=crop),
        video_processor=VideoLlavaVideoProcessor(size=size, crop_size=crop),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATE,
    )
    return instantiate("video_llava", VideoLlavaForConditionalGeneration, config, processor, seed)


register_standard_family("video_llava", ("video_llava",), build_video_llava)
