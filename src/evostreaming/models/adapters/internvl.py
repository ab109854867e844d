"""InternVL (transformers-native ``-hf`` checkpoints, e.g. InternVL3.5): ChatML, 1D RoPE.

An image is written ``<IMG_CONTEXT>\\n`` in the prompt; the processor expands it to
``<img><IMG_CONTEXT>*N</img>``.
"""

from __future__ import annotations

from evostreaming.models.adapters.base import FamilyAdapter


class InternVLAdapter(FamilyAdapter):
    family = "internvl"
    model_types = ("internvl",)
    image_keys = ("pixel_values",)

    def frame(self) -> str:
        return "<IMG_CONTEXT>\n"
