"""Video sources on real clips (1 to 60 fps) and on damaged copies made here."""

import types

import av
import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE_VIDEOS, need_shared
from evostreaming.video.sources import (
    ArraySource,
    ImageFolderSource,
    VideoFileSource,
    VideoSourceError,
    fit_pixels,
    open_source,
    sample_by_time,
)
from evostreaming.video.writer import write_mp4


def _clip(name):
    return need_shared(SAMPLE_VIDEOS / f"{name}.mp4")


def _rate(path):
    with av.open(str(path)) as c:
        return float(c.streams.video[0].average_rate)


@pytest.mark.parametrize(("name", "n_frames"), [("421", 3), ("1054", 2), ("8", 4)])
def test_real_clips_sample_at_half_fps_with_presentation_times(name, n_frames):
    path = _clip(name)
    frames = list(VideoFileSource(path, fps=0.5))
    assert [round(f.time, 3) for f in frames] == [2.0 * k for k in range(n_frames)]
    assert all(f.image.mode == "RGB" for f in frames)


@pytest.mark.parametrize(("name", "n_frames"), [("1550", 28), ("1492", 35), ("1454", 6)])
def test_high_fps_clip_timestamps_are_the_frames_own(name, n_frames):
    path = _clip(name)  # 59.94 fps / 56 s, 23.98 fps / 70 s, 60 fps / 12 s
    rate = _rate(path)
    frames = list(VideoFileSource(path, fps=0.5))
    assert len(frames) == n_frames
    for k, f in enumerate(frames):
        # Each sampled frame is the first one at or after tick 2k, so within one frame period.
        assert 2.0 * k <= f.time + 1e-6 < 2.0 * k + 1.0 / rate + 1e-6


def test_sources_are_lazy():
    path = _clip("1492")
    it = iter(VideoFileSource(path, fps=0.5))
    assert isinstance(it, types.GeneratorType)
    first = next(it)
    assert first.time == 0.0


def test_pixel_budget_keeps_aspect_ratio():
    img = Image.new("RGB", (854, 480))
    out = fit_pixels(img, 100_000)
    assert out.width * out.height <= 100_000
    assert abs(out.width / out.height - 854 / 480) < 0.02


def test_variable_frame_rate_sampling_uses_timestamps():
    # Irregular timestamps: a burst then a long gap; ticks every 1 s.
    times = [0.0, 0.1, 0.2, 0.35, 2.6, 2.7, 3.05, 5.5]
    out = [t for t, _ in sample_by_time(((t, None) for t in times), fps=1.0)]
    assert out == [0.0, 2.6, 3.05, 5.5]


def test_missing_file_is_named():
    with pytest.raises(VideoSourceError, match="nope.mp4: no such file"):
        VideoFileSource("/tmp/definitely/nope.mp4")


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(VideoSourceError, match="notes.mp4: not a readable video"):
        list(VideoFileSource(bad))


def test_zero_length_video(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoSourceError, match=r"empty.mp4: zero-length video"):
        list(VideoFileSource(empty))
    # A valid container whose only video stream has no frames.
    header_only = tmp_path / "noframes.mp4"
    clip = _clip("8").read_bytes()
    moov = clip.index(b"moov") - 4
    size = int.from_bytes(clip[moov : moov + 4], "big")
    header_only.write_bytes(clip[: moov + size])  # ftyp + moov, no media data
    with pytest.raises(VideoSourceError, match=r"noframes.mp4: (zero-length|stream ended early|stream broke)"):
        list(VideoFileSource(header_only))


def test_truncated_copy_reports_the_time_reached(tmp_path):
    data = _clip("8").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    frames = []
    with pytest.raises(VideoSourceError, match=r"cut.mp4: stream ended early at t=\d+\.\d+ s of a declared 7\.00 s"):
        for f in VideoFileSource(cut, fps=0.5):
            frames.append(f)
    assert frames  # the part before the cut was delivered first


def test_corrupted_copy_reports_the_time_reached(tmp_path):
    data = bytearray(_clip("8").read_bytes())
    third = len(data) // 3
    data[third : third + 20000] = bytes(20000)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(VideoSourceError, match=r"broken.mp4: stream (broke|ended early) at t=\d+\.\d+ s"):
        list(VideoFileSource(broken, fps=0.5))


def test_image_folder_and_arrays(tmp_path):
    for i in range(6):
        Image.new("RGB", (32, 24), (i * 40, 0, 0)).save(tmp_path / f"{i:03d}.png")
    frames = list(ImageFolderSource(tmp_path, fps=0.5, source_fps=1.0))
    assert [f.time for f in frames] == [0.0, 2.0, 4.0]
    assert frames[1].image.getpixel((0, 0))[0] == 80
    arrays = [np.full((8, 8, 3), i, np.uint8) for i in range(4)]
    out = list(ArraySource(arrays, fps=1.0, source_fps=2.0))
    assert [f.time for f in out] == [0.0, 1.0]
    assert out[1].image.getpixel((0, 0)) == (2, 2, 2)


def test_open_source_dispatch(tmp_path):
    clip = write_mp4((np.full((32, 32, 3), i * 20, np.uint8) for i in range(8)), tmp_path / "c.mp4", fps=4)
    assert isinstance(open_source(clip), VideoFileSource)
    assert [round(f.time, 2) for f in open_source(clip, fps=2)] == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(VideoSourceError, match="no images"):
        open_source(tmp_path)  # a folder with no images


def test_network_url_source_over_local_http(tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from evostreaming.video.sources import LiveSource

    clip = write_mp4((np.full((32, 32, 3), 20 * k, np.uint8) for k in range(12)), tmp_path / "live.mp4", fps=2)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        source = open_source(url, fps=1.0)
        assert isinstance(source, LiveSource)
        assert [round(f.time, 2) for f in source] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        missing = open_source(f"http://127.0.0.1:{server.server_address[1]}/nope.mp4")
        with pytest.raises(VideoSourceError, match="nope.mp4: cannot open live source"):
            list(missing)
    finally:
        server.shutdown()
