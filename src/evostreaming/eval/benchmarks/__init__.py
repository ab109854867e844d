"""Benchmarks for ``eval run --benchmark NAME``: one module or folder each, registered by name with
one ``BENCHMARKS.register`` line; each turns its files into RealStreamEval samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evostreaming.eval.schema import Sample
from evostreaming.utils.registry import Registry


@dataclass(frozen=True)
class Metric:
    """A benchmark's own metric over a saved run (``eval report RUN --as BENCHMARK``): ``report(run folder,
    --judge spec)`` computes it from the trajectories, writes ``summary.<benchmark>.json`` and returns it."""

    name: str
    report: Callable[[Path, str], dict]
    headline: tuple[str, ...]  # the summary's keys printed by the CLI


@dataclass(frozen=True)
class Benchmark:
    # (data file or folder, folder the video paths are relative to or None, fps override or None)
    load: Callable[[Path, Path | None, float | None], list[Sample]]
    help: str  # one line for ``eval run --help``
    metric: Metric | None = None  # its own metric, beside RealStreamEval's score of the same run
    no_metric: str | None = None  # why a saved run cannot be scored by its own protocol (said by --as)
    # its original offline scorer of prediction files, when it has one (``eval score-ovo``):
    # (annotations, predictions folder, allow_missing) -> scores; ValueError for bad or partial input
    offline: Callable[[Path, Path, bool], dict] | None = None


BENCHMARKS: Registry[Benchmark] = Registry(
    "benchmark", discover="evostreaming.eval.benchmarks", hint=" (docs/architecture.md: add a benchmark)"
)


def benchmark_help() -> str:
    return "; ".join(f"{name}: {b.help}" for name, b in BENCHMARKS.items())


def load_benchmark(
    name: str, data: Path, videos: Path | None = None, fps: float | None = None, limit: int | None = None
) -> list[Sample]:
    """The samples of benchmark ``name`` (the first ``limit`` when given). Raises ValueError for an
    unknown name and ``SampleFormatError`` for a bad file."""
    samples = BENCHMARKS.get(name).load(Path(data), videos, fps)
    return samples[:limit] if limit else samples
