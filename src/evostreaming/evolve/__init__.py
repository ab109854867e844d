"""EvoStreaming: the model generates, annotates and rolls out its own data; LoRA rounds; the main job."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "EvolveConfig": "pipeline",
        "run_evolution": "pipeline",
        "DemoConfig": "main_job",
        "run_demo": "main_job",
        "run_main_job": "main_job",
        "PoolVideo": "pool",
        "world_pool": "pool",
        "folder_pool": "pool",
        "load_frames": "pool",
    },
)
