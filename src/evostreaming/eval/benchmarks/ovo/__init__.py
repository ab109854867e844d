"""OVO-Bench: the mapping into RealStreamEval samples (``mapping``) and its original offline scorer (``score``)."""

from __future__ import annotations

from pathlib import Path

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark
from evostreaming.eval.benchmarks.ovo.mapping import OVOMapping, load_ovo


def _load(data: Path, videos: Path | None, fps: float | None):
    return load_ovo(data, videos, OVOMapping(fps=fps or 0.5))


BENCHMARKS.register(
    "ovo",
    Benchmark(
        _load,
        "OVO-Bench's ovo_bench_new.json",
        no_metric="OVO-Bench's own protocol scores offline prediction files (use 'eval score-ovo' on them); a "
        "streaming trajectory holds no per-probe offline predictions",
    ),
)
