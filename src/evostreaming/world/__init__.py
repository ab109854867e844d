"""ShapesWorld: a procedural video world with exact ground truth, its benchmarks, the pocket recipe."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "generate_scene": "generator",
        "render_frames": "scene",
        "Scene": "scene",
        "make_bench": "bench",
    },
)
