"""The native RealStreamEval format (docs/realstreameval-format.md): a JSONL file or a folder of them."""

from __future__ import annotations

from pathlib import Path

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark
from evostreaming.eval.schema import Sample, load_samples


def load_native(data: Path, videos: Path | None, fps: float | None) -> list[Sample]:
    samples = load_samples(data)
    root = videos or (data if data.is_dir() else data.parent)
    for s in samples:
        if "://" not in s.video and not Path(s.video).is_absolute():
            s.video = str(root / s.video)
        if fps:
            s.fps = fps
    return samples  # times against each video's own length: load_benchmark


BENCHMARKS.register("jsonl", Benchmark(load_native, "RealStreamEval JSONL (file or folder)"))
