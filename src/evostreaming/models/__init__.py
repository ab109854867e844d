"""Models: loading by spec, one file per family (adapter + tiny twin), the pocket model; imports no other layer."""

from evostreaming.models.adapter import EncodedSegment, FamilyAdapter
from evostreaming.models.family import FAMILIES, Family, adapter_for, family_names, register_family
from evostreaming.models.loading import LoadedModel, load_model
from evostreaming.models.specs import SCHEMES, ModelLoadError, ModelSpec, parse_spec
from evostreaming.models.tiny import TinyModel, build_tiny

__all__ = [
    "FAMILIES",
    "SCHEMES",
    "EncodedSegment",
    "Family",
    "FamilyAdapter",
    "LoadedModel",
    "ModelLoadError",
    "ModelSpec",
    "TinyModel",
    "adapter_for",
    "build_tiny",
    "family_names",
    "load_model",
    "parse_spec",
    "register_family",
]
