"""The native RealStreamEval format (docs/realstreameval-format.md): a JSONL file or a folder of them."""

from __future__ import annotations

from pathlib import Path

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark
from evostreaming.eval.schema import Sample, SampleFormatError, load_samples
from evostreaming.video.sources import VideoFileSource, VideoSourceError


def load_native(data: Path, videos: Path | None, fps: float | None) -> list[Sample]:
    samples = load_samples(data)
    root = videos or (data if data.is_dir() else data.parent)
    file = data / "samples.jsonl" if data.is_dir() else data
    for s in samples:
        if "://" not in s.video and not Path(s.video).is_absolute():
            s.video = str(root / s.video)
        if fps:
            s.fps = fps
        if s.duration is None and Path(s.video).is_file():
            _check_against_video(s, file)
    return samples


def _check_against_video(sample: Sample, file: Path) -> None:
    """Times past the end of the sample's own video (read from its header) are an error at the door;
    a video that cannot be read is left to the run, which records it as a failed sample."""
    try:
        end = VideoFileSource(sample.video).duration()
    except (VideoSourceError, OSError, ValueError):
        return
    if end:
        try:
            sample.check_times(end, what=f"video {sample.video} lasts")
        except ValueError as exc:
            raise SampleFormatError(f"{file}: sample {sample.id!r}: {exc}") from None


BENCHMARKS.register("jsonl", Benchmark(load_native, "RealStreamEval JSONL (file or folder)"))
