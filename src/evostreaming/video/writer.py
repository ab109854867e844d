"""Write frames to a video file with PyAV (an mp4 in h264 when available, else mpeg4, by default)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: float = 2.0, crf: int | None = None) -> Path:
    """``crf`` sets x264's quality (lower = closer to the input; 23 is x264's default)."""
    return write_video(frames, path, fps, crf=crf)


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float = 2.0,
    *,
    codec: str | None = None,
    crf: int | None = None,
) -> Path:
    """Frames (RGB uint8) to ``path`` in the container its suffix names, with ``codec`` (default: h264
    when available, else mpeg4; e.g. ``libvpx`` for a WebM every browser plays)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = np.asarray(next(frames), dtype=np.uint8)
    h, w = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        codec = codec or ("libx264" if "libx264" in av.codecs_available else "mpeg4")
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        if crf is not None and codec == "libx264":
            stream.options = {"crf": str(crf)}
        for arr in _chain(first, frames):
            arr = np.asarray(arr, dtype=np.uint8)[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _chain(first, rest):
    yield first
    yield from rest
