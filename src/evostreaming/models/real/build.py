"""``real:<checkpoint>``: a random-weight model with a released checkpoint's exact configuration.

For memory and speed measurements without a download: same layers, widths, vision tower, vocabulary
and special-token ids as the checkpoint (``models/real/table.py``), weights drawn at random, a
tokenizer with the released layout (``models/real/vocab.py``) and the family's processor at the
released image settings. What it does not have is the checkpoint's knowledge: its replies are noise.
The model is created directly on its device in its precision, so a 7-8B twin needs no CPU copy.
"""

from __future__ import annotations

import torch

from evostreaming.models.families import internvl, llava_onevision, qwen2_vl, smolvlm
from evostreaming.models.placement import Placement
from evostreaming.models.real.table import RealCheckpoint, real_checkpoint
from evostreaming.models.real.vocab import LAYOUTS, layout_tokenizer


def real_config(entry: RealCheckpoint, tok=None):
    """The checkpoint's ``PretrainedConfig`` (end-of-text ids from the tokenizer when given)."""
    from transformers import AutoConfig

    text = dict(entry.text)
    if tok is not None:
        text.update(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return AutoConfig.for_model(entry.model_type, text_config=text, vision_config=dict(entry.vision), **entry.top)


def _qwen_processor(processor_cls, video_cls, tok, settings: dict):
    from transformers import Qwen2VLImageProcessor

    image = Qwen2VLImageProcessor(**settings)
    video = video_cls(**{k: v for k, v in settings.items() if k == "patch_size"})
    return processor_cls(
        image_processor=image, video_processor=video, tokenizer=tok, chat_template=qwen2_vl.QWEN_VL_TEMPLATE
    )


def _processor(entry: RealCheckpoint, tok):
    import transformers as tf

    s = dict(entry.processor)
    if entry.family == "qwen2_vl":
        return _qwen_processor(tf.Qwen2VLProcessor, tf.Qwen2VLVideoProcessor, tok, s)
    if entry.family == "qwen2_5_vl":
        return _qwen_processor(tf.Qwen2_5_VLProcessor, tf.Qwen2VLVideoProcessor, tok, s)
    if entry.family == "qwen3_vl":
        return _qwen_processor(tf.Qwen3VLProcessor, tf.Qwen3VLVideoProcessor, tok, s)
    if entry.family == "internvl":
        # One 448-pixel tile per frame, as InternVL reads video frames (no dynamic tiling), with the
        # released ImageNet normalization (GotOcr2's defaults are 384 pixels and CLIP's statistics).
        from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        tile = dict(
            size={"height": 448, "width": 448}, image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD
        )
        return tf.InternVLProcessor(
            image_processor=tf.GotOcr2ImageProcessor(crop_to_patches=False, **tile),
            video_processor=tf.InternVLVideoProcessor(**tile),
            tokenizer=tok,
            image_seq_length=s["image_seq_length"],
            chat_template=internvl.TEMPLATE,
        )
    if entry.family == "llava_onevision":
        pinpoints = entry.top["image_grid_pinpoints"]
        return tf.LlavaOnevisionProcessor(
            image_processor=tf.LlavaOnevisionImageProcessor(image_grid_pinpoints=pinpoints),
            video_processor=tf.LlavaOnevisionVideoProcessor(),
            tokenizer=tok,
            chat_template=llava_onevision.TEMPLATE,
            **s,
        )
    if entry.family == "smolvlm":
        edge = {"longest_edge": s["longest_edge"]}
        return tf.SmolVLMProcessor(
            image_processor=tf.SmolVLMImageProcessor(size=edge, max_image_size=edge, do_image_splitting=False),
            video_processor=tf.SmolVLMVideoProcessor(size=edge, max_image_size=edge),
            tokenizer=tok,
            image_seq_len=s["image_seq_len"],
            chat_template=smolvlm.TEMPLATE,
        )
    raise ValueError(f"no real-twin processor recipe for family {entry.family!r}")


def build_real(checkpoint: str, placement: Placement | None = None, seed: int = 0):
    """(model, processor) for ``real:<checkpoint>``, created on the placement's device and dtype."""
    from transformers import AutoModelForImageTextToText

    placement = placement or Placement()
    entry = real_checkpoint(checkpoint)
    tok = layout_tokenizer(LAYOUTS[entry.tokens])
    config = real_config(entry, tok)
    torch.manual_seed(seed)
    device = "cpu" if placement.device_map else placement.resolved_device()
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(
            config, dtype=placement.torch_dtype(), attn_implementation=placement.attn_implementation()
        )
    model.config.name_or_path = f"real:{entry.checkpoint}"
    return model.eval(), _processor(entry, tok)
