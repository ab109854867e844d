"""Frame sources. Every source lazily yields ``Frame(time, image)`` sampled at a target fps.

* ``VideoFileSource``: a video file, decoded with PyAV one frame at a time; frames are chosen by
  their presentation timestamps, so variable frame rates are handled.
* ``LiveSource``: a camera (index N -> /dev/videoN via PyAV's v4l2 input) or a network URL
  (rtsp://, http://, ...), also through PyAV.
* ``ImageFolderSource``: a folder of images in name order, at a stated frame rate.
* ``ArraySource``: in-memory arrays (H, W, 3) uint8, at a stated frame rate.

Frames are RGB PIL images resized (aspect kept) to at most ``max_pixels`` before any processor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evostreaming.utils.errors import UserError

DEFAULT_FPS = 0.5
DEFAULT_MAX_PIXELS = 448 * 448
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi"}


class VideoSourceError(UserError, RuntimeError):
    """A source could not be read; the message names the source and the stream time reached."""


@dataclass(frozen=True)
class Frame:
    time: float  # seconds from the start of the stream (the frame's presentation time)
    image: Image.Image


def check_max_pixels(max_pixels: int | None, flag: str = "--max-pixels") -> None:
    """One meaning everywhere (``stream``, ``eval run``, sources): a pixel budget >= 1, or 0 to keep each
    frame's own size."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or max_pixels < 0):
        raise ValueError(
            f"{flag} is a pixel budget per frame (e.g. {448 * 448}), or 0 to keep each frame's size; got {max_pixels}"
        )


def fit_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale so that width*height <= max_pixels, keeping the aspect ratio (0 or None: as it is)."""
    check_max_pixels(max_pixels)
    image = image.convert("RGB")
    if not max_pixels or image.width * image.height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (image.width * image.height))
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.BILINEAR)


def sample_by_time(frames: Iterable[tuple[float, object]], fps: float) -> Iterator[tuple[float, object]]:
    """Keep the first frame at or after each tick k/fps (k = 0, 1, ...), with its own timestamp.

    Ticks that fall between two decoded frames are served by the next frame; a long gap in a
    variable-frame-rate stream yields one frame, not duplicates.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    period = 1.0 / fps
    next_tick = 0.0
    eps = 1e-6
    for t, frame in frames:
        if t + eps >= next_tick:
            yield t, frame
            next_tick = (math.floor((t + eps) / period) + 1) * period


class FrameSource:
    name: str = "source"

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


class VideoFileSource(FrameSource):
    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.path = Path(path)
        self.name = str(path)
        self.fps = fps
        self.max_pixels = max_pixels
        if not self.path.exists():
            raise VideoSourceError(f"{self.path}: no such file; check the path (stream time reached: 0.0 s)")
        if self.path.is_dir():
            raise VideoSourceError(f"{self.path}: is a folder; use a video file (folders are read as images)")
        if self.path.stat().st_size == 0:
            raise VideoSourceError(
                f"{self.path}: zero-length video, the file is empty (0 bytes) (stream time reached: 0.0 s)"
            )

    def duration(self) -> float | None:

        with _open(self.path) as container:
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / 1e6 if container.duration else None

    def _decoded(self) -> Iterator[tuple[float, object]]:
        import av

        reached = 0.0
        with _open(self.path) as container:
            if not container.streams.video:
                raise VideoSourceError(f"{self.path}: contains no video stream (stream time reached: 0.0 s)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            expected = None
            if stream.duration is not None and stream.time_base is not None:
                expected = float(stream.duration * stream.time_base)
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            n = 0
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    reached = float(frame.pts * stream.time_base) - start
                    n += 1
                    yield reached, frame
            except av.error.FFmpegError as exc:
                raise VideoSourceError(
                    f"{self.path}: stream broke at t={reached:.2f} s while decoding ({exc}); "
                    "the file is damaged after that point: re-encode or truncate it"
                ) from exc
            if n == 0:
                raise VideoSourceError(f"{self.path}: zero-length video, no frame could be decoded (0.0 s)")
            # A file cut short decodes cleanly up to the cut: compare with the declared duration.
            frame_dur = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
            if expected is not None and reached + frame_dur + 0.5 < expected:
                raise VideoSourceError(
                    f"{self.path}: stream ended early at t={reached:.2f} s of a declared {expected:.2f} s; "
                    "the file is truncated or damaged: re-download or re-encode it"
                )

    def __iter__(self) -> Iterator[Frame]:
        for t, frame in sample_by_time(self._decoded(), self.fps):
            yield Frame(t, fit_pixels(frame.to_image(), self.max_pixels))


class LiveSource(FrameSource):
    """Camera index or network URL, decoded by PyAV; timestamps come from the stream's clock."""

    def __init__(
        self,
        spec: str | int,
        fps: float = DEFAULT_FPS,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_seconds: float | None = None,
    ):
        self.spec = spec
        self.name = str(spec)
        self.fps = fps
        self.max_pixels = max_pixels
        self.max_seconds = max_seconds

    # default ports of the URL schemes a probe can reach without opening the stream
    PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}

    def probe(self, timeout_s: float = 3.0) -> None:
        """Fail now, with the reason, when the camera does not exist or the URL's host does not answer,
        so that a command finds out before it spends minutes loading a model. Nothing is decoded: a
        camera is only looked up, a URL's host only gets a TCP connection, closed at once."""
        import socket
        from urllib.parse import urlsplit

        if isinstance(self.spec, int) or str(self.spec).isdigit():
            device = Path(f"/dev/video{int(self.spec)}")
            if not device.exists():
                found = sorted(str(d) for d in Path("/dev").glob("video[0-9]*"))
                have = f"cameras here: {', '.join(found)}" if found else "this machine has no /dev/video* camera"
                raise VideoSourceError(f"{self.name}: no camera {device} ({have}) (stream time reached: 0.0 s)")
            return
        url = urlsplit(str(self.spec))
        try:
            port = url.port or self.PORTS.get(url.scheme.lower())
        except ValueError as exc:  # "rtsp://host:99999/x"
            raise VideoSourceError(f"{self.name}: {exc} (stream time reached: 0.0 s)") from None
        if not url.hostname or port is None:
            return  # a scheme PyAV knows and we do not: opening it will tell
        try:
            socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        except OSError as exc:
            raise VideoSourceError(
                f"{self.name}: cannot reach {url.hostname}:{port} ({exc.strerror or exc}); is the stream up? "
                "(stream time reached: 0.0 s)"
            ) from exc

    def _open(self):
        import av

        try:
            if isinstance(self.spec, int) or str(self.spec).isdigit():
                return av.open(f"/dev/video{int(self.spec)}", format="v4l2")
            return av.open(str(self.spec), options={"rtsp_transport": "tcp"}, timeout=10.0)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoSourceError(
                f"{self.name}: cannot open live source ({exc}) (stream time reached: 0.0 s)"
            ) from exc

    def _decoded(self) -> Iterator[tuple[float, object]]:
        import av

        container = self._open()
        reached = 0.0
        try:
            stream = container.streams.video[0]
            t0 = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                t0 = t if t0 is None else t0
                reached = t - t0
                if self.max_seconds is not None and reached > self.max_seconds:
                    return
                yield reached, frame
        except av.error.FFmpegError as exc:
            raise VideoSourceError(f"{self.name}: stream broke at t={reached:.2f} s ({exc}); reconnect") from exc
        finally:
            container.close()

    def __iter__(self) -> Iterator[Frame]:
        for t, frame in sample_by_time(self._decoded(), self.fps):
            yield Frame(t, fit_pixels(frame.to_image(), self.max_pixels))


class ImageFolderSource(FrameSource):
    def __init__(
        self,
        folder: str | Path,
        fps: float = DEFAULT_FPS,
        source_fps: float = 1.0,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.folder = Path(folder)
        self.name = str(folder)
        self.fps, self.source_fps, self.max_pixels = fps, source_fps, max_pixels
        if not self.folder.is_dir():
            raise VideoSourceError(f"{self.folder}: no such folder of images (stream time reached: 0.0 s)")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise VideoSourceError(
                f"{self.folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found (stream time reached: 0.0 s)"
            )

    def __iter__(self) -> Iterator[Frame]:
        timed = ((i / self.source_fps, p) for i, p in enumerate(self.files))
        for t, path in sample_by_time(timed, self.fps):
            try:
                with Image.open(path) as img:
                    image = fit_pixels(img, self.max_pixels)
            except OSError as exc:
                raise VideoSourceError(f"{path}: unreadable image at t={t:.2f} s ({exc})") from exc
            yield Frame(t, image)


class ArraySource(FrameSource):
    def __init__(
        self,
        frames: Iterable[np.ndarray | Image.Image],
        fps: float = DEFAULT_FPS,
        source_fps: float | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        name: str = "arrays",
    ):
        self.frames = frames
        self.fps = fps
        self.source_fps = source_fps or fps
        self.max_pixels = max_pixels
        self.name = name

    def __iter__(self) -> Iterator[Frame]:
        timed = ((i / self.source_fps, f) for i, f in enumerate(self.frames))
        for t, f in sample_by_time(timed, self.fps):
            image = f if isinstance(f, Image.Image) else Image.fromarray(np.asarray(f, dtype=np.uint8))
            yield Frame(t, fit_pixels(image, self.max_pixels))


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoSourceError(
            f"{path}: not a readable video ({exc.strerror or exc}); expected a container such as mp4/mkv/webm "
            "(stream time reached: 0.0 s)"
        ) from exc


def open_source(
    spec: str | int | Path, fps: float = DEFAULT_FPS, max_pixels: int | None = DEFAULT_MAX_PIXELS, **kwargs
) -> FrameSource:
    """Pick a source from a command-line spec: a file, a folder, a camera index or a URL."""
    s = str(spec)
    if s.isdigit():
        return LiveSource(int(s), fps, max_pixels, **kwargs)
    if "://" in s:
        return LiveSource(s, fps, max_pixels, **kwargs)
    path = Path(s)
    if path.is_dir():
        return ImageFolderSource(path, fps, max_pixels=max_pixels, **kwargs)
    return VideoFileSource(path, fps, max_pixels)
