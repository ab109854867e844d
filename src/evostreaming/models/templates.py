"""Chat-template pieces shared by the tiny offline models' families.

The tiny and pocket models go through the same rendering as real checkpoints, so their templates
reproduce each family's released turn format; real checkpoints always use the template they ship.
"""


def chatml(image: str) -> str:
    """ChatML with ``image`` written for each image item (Qwen-VL markers, ``<IMG_CONTEXT>\\n``, ``<image>\\n``)."""
    return (
        "{% for message in messages %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}" + image + "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
