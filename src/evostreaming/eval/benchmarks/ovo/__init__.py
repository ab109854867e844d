"""OVO-Bench: the mapping into RealStreamEval samples (``mapping``) and its original offline scorer (``score``)."""

from __future__ import annotations

from pathlib import Path

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark
from evostreaming.eval.benchmarks.ovo.mapping import OVOMapping, load_ovo


def _score_files(annotations: Path, predictions: Path, allow_missing: bool) -> dict:
    from evostreaming.eval.benchmarks.ovo.score import score_files

    return score_files(annotations, predictions, allow_missing)


def _load(data: Path, videos: Path | None, fps: float | None):
    return load_ovo(data, videos, OVOMapping(fps=fps or 0.5))


BENCHMARKS.register(
    "ovo",
    Benchmark(
        _load,
        "OVO-Bench's ovo_bench_new.json",
        no_metric="OVO-Bench's own protocol scores offline prediction files (use 'eval score-ovo' on them); a "
        "streaming trajectory holds no per-probe offline predictions",
        offline=_score_files,
    ),
)
