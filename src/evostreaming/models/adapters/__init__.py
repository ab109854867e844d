"""One adapter per model family; see ``base.FamilyAdapter``."""

from evostreaming.models.adapters.base import EncodedSegment, FamilyAdapter
from evostreaming.models.adapters.internvl import InternVLAdapter
from evostreaming.models.adapters.llava_onevision import LlavaOnevisionAdapter
from evostreaming.models.adapters.qwen import Qwen2_5VLAdapter, Qwen3VLAdapter, QwenVLAdapter
from evostreaming.models.adapters.smolvlm import SmolVLMAdapter

_ALL = (QwenVLAdapter, Qwen2_5VLAdapter, Qwen3VLAdapter, InternVLAdapter, LlavaOnevisionAdapter, SmolVLMAdapter)
ADAPTERS: dict[str, type[FamilyAdapter]] = {cls.family: cls for cls in _ALL}


def adapter_for(model) -> FamilyAdapter:
    """The adapter that matches a loaded model's ``config.model_type``."""
    model_type = model.config.model_type
    for cls in ADAPTERS.values():
        if model_type in cls.model_types:
            return cls()
    raise ValueError(
        f"model type {model_type!r} has no streaming adapter; supported families: "
        f"{', '.join(sorted(ADAPTERS))}. See docs/streaming.md, 'Adding a model family'."
    )


__all__ = ["ADAPTERS", "EncodedSegment", "FamilyAdapter", "adapter_for"]
