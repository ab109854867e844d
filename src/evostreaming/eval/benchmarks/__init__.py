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
    unknown name and ``SampleFormatError`` for a bad file: one without samples, or a turn or gold time
    past the end of the sample's own video (even when the file declares a longer ``duration``: the
    stream ends with its video, so that time could never be reached and would score 0 silently)."""
    from evostreaming.eval.schema import SampleFormatError

    samples = BENCHMARKS.get(name).load(Path(data), videos, fps)
    if not samples:
        raise SampleFormatError(
            f"{data}: holds no samples (an empty list or file?); check --data and --benchmark {name}"
        )
    samples = samples[:limit] if limit else samples
    check_against_videos(samples, Path(data))
    return samples


def check_against_videos(samples: list[Sample], data: Path) -> None:
    """Every turn and answer time falls inside its sample's video, read from the file's header (each
    video once). A video that is absent or unreadable is left to the run, which records its sample as
    failed; a URL is not opened."""
    from evostreaming.eval.schema import SampleFormatError
    from evostreaming.video.sources import VideoFileSource, VideoSourceError

    lengths: dict[str, float | None] = {}
    for s in samples:
        if "://" in s.video or not Path(s.video).is_file():
            continue
        if s.video not in lengths:
            try:
                lengths[s.video] = VideoFileSource(s.video).duration()
            except (VideoSourceError, OSError, ValueError):
                lengths[s.video] = None
        end = lengths[s.video]
        if end:
            try:
                s.check_times(end, what=f"its video {s.video} lasts")
            except ValueError as exc:
                raise SampleFormatError(f"{data}: sample {s.id!r}: {exc}") from None
