"""Performance benchmarks behind `evostreaming bench` (latency and memory; JSON + PNG)."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "run_benchmark": "streaming",
    },
)
