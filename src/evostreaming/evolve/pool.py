"""The video pool of a self-evolution run: ShapesWorld scenes (``world:<seed>``) or video files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evostreaming.video.sources import VIDEO_SUFFIXES, VideoFileSource

# pool scenes never overlap pocket training ([0, 20,000)), its held-out set or benchmarks (>= 50M)
WORLD_POOL_BASE = 30_000_000


@dataclass(frozen=True)
class PoolVideo:
    id: str  # "world:<seed>" or a file path
    fps: float = 0.5

    def frames(self, max_pixels: int | None = 448 * 448) -> list[np.ndarray]:
        if self.id.startswith("world:"):
            from evostreaming.world.generator import generate_scene
            from evostreaming.world.scene import render_frames

            return [f for _, f in render_frames(generate_scene(int(self.id.split(":", 1)[1])), fps=self.fps)]
        return [np.asarray(f.image) for f in VideoFileSource(self.id, fps=self.fps, max_pixels=max_pixels)]


def load_frames(video_id: str, fps: float = 0.5, max_pixels: int | None = 448 * 448) -> list[np.ndarray]:
    """The frames of a pool video id (a ShapesWorld scene or a file): ``train_lora``'s frame loader."""
    return PoolVideo(video_id, fps).frames(max_pixels)


def world_pool(world_seed: int, n: int) -> list[PoolVideo]:
    if n < 1:
        raise ValueError(f"--n-videos is the number of ShapesWorld videos in the pool, >= 1; got {n}")
    return [PoolVideo(f"world:{WORLD_POOL_BASE + world_seed * 1_000_003 + i}") for i in range(n)]


def folder_pool(folder: str | Path, fps: float = 0.5) -> list[PoolVideo]:
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) found")
    return [PoolVideo(str(p), fps) for p in files]
