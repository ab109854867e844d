"""Models: loading by spec, one file per family (adapter + tiny twin), the pocket model; imports only utils."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "EncodedSegment": "adapter",
        "FamilyAdapter": "adapter",
        "FAMILIES": "family",
        "Family": "family",
        "adapter_for": "family",
        "family_names": "family",
        "register_family": "family",
        "LoadedModel": "loading",
        "load_model": "loading",
        "SCHEMES": "specs",
        "ModelLoadError": "specs",
        "ModelSpec": "specs",
        "parse_spec": "specs",
        "TinyModel": "tiny",
        "build_tiny": "tiny",
    },
)
