"""Plumbing that imports no other layer: JSONL, progress bars, registries, lazy exports, the OpenAI client."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "read_jsonl": "jsonl",
        "append_jsonl": "jsonl",
        "job_progress": "progress",
        "Registry": "registry",
        "lazy_exports": "lazy",
        "ChatClient": "openai_client",
        "RemoteError": "openai_client",
    },
)
