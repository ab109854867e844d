"""RTSP: a local RTSP server on 127.0.0.1 (GStreamer's, run by the system Python) streams a ShapesWorld
clip; `stream`, `connect` and a server-side URL session read it with PyAV over TCP."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import chromium_or_skip, free_port

pytestmark = pytest.mark.slow
TOOL = Path(__file__).parent / "tools" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _have_gst_rtsp() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def _wait_line(proc, marker: str) -> list[str]:
    lines = []
    for line in proc.stdout if proc.stdout else proc.stderr:  # blocks until the marker (or the end)
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("process ended before it was ready:\n" + "".join(lines))


@pytest.fixture(scope="module")
def rtsp_url(tmp_path_factory):
    if not _have_gst_rtsp():
        pytest.skip(
            "GStreamer's RTSP server is missing (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
            "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; `make test` does it as root)"
        )
    from evostreaming.video.writer import write_mp4
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.scene import render_frames

    clip = tmp_path_factory.mktemp("rtsp") / "clip.mp4"
    write_mp4([f for _, f in render_frames(generate_scene(3), fps=2.0)][:60], clip, fps=2.0)
    port = free_port()
    proc = subprocess.Popen([SYSTEM_PYTHON, str(TOOL), str(port), str(clip)], stdout=subprocess.PIPE, text=True)
    _wait_line(proc, "ready")
    yield f"rtsp://127.0.0.1:{port}/clip"
    proc.terminate()
    proc.wait(timeout=30)


def test_stream_reads_an_rtsp_camera(rtsp_url, tmp_path):
    out = tmp_path / "steps.jsonl"
    cmd = [sys.executable, "-m", "evostreaming.cli", "stream", "tiny:qwen2_vl", rtsp_url, "--fps", "1"]
    cmd += ["--max-steps", "3", "--jsonl", str(out), "--query", "What moves?"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    steps = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["time"] for s in steps] == [0.0, 1.0, 2.0]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    cmd = [sys.executable, "-m", "evostreaming.cli", "serve", "tiny:qwen2_vl", "--port", str(port)]
    cmd += ["--allow-url-host", "127.0.0.1", "--max-new-tokens", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    _wait_line(proc, "Uvicorn running on")
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    yield f"ws://127.0.0.1:{port}/v1/realtime"
    proc.terminate()
    proc.wait(timeout=30)


def test_connect_streams_an_rtsp_camera_to_the_server(rtsp_url, server):
    cmd = [sys.executable, "-m", "evostreaming.cli", "connect", server, rtsp_url, "--fps", "1", "--max-frames", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 frames decided" in res.stdout


def test_a_server_side_url_session_reads_the_camera_and_a_dead_url_is_a_clear_error(rtsp_url, server):
    from evostreaming.serve.client import RealtimeClient

    async def run():
        async with RealtimeClient(server) as client:
            await client.update(fps=1, source={"type": "url", "url": rtsp_url})
            decisions = []
            async for ev in client.events():
                if ev["type"] == "frame.decision":
                    decisions.append(ev)
                    if len(decisions) == 2:
                        break
            dead = rtsp_url.rsplit(":", 1)[0] + f":{free_port()}/none"  # nothing listens there
            await client.update(source={"type": "url", "url": dead})
            errors = []
            async for ev in client.events():
                if ev["type"] == "error":
                    errors.append(ev)
                    break
            return decisions, errors

    decisions, errors = asyncio.run(run())
    # on the 1 fps grid of the camera's own clock, in order; any frame, the first one included, may be
    # superseded by a newer one while the worker is busy (a live source keeps the latest frame)
    times = [d["time"] for d in decisions]
    assert times[1] > times[0] >= 0.0 and all(t == int(t) for t in times)
    assert errors[0]["code"] == "source_failed" and "127.0.0.1" in errors[0]["message"]


def test_the_pages_url_tab_watches_the_rtsp_camera_through_the_server(rtsp_url, server):
    chromium, sync_api = chromium_or_skip()
    http = server.replace("ws://", "http://").replace("/v1/realtime", "/")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(http)
        page.click("button[data-tab=url]")
        page.fill("#url", rtsp_url)
        page.click("#start-url")
        page.wait_for_selector(".tick:nth-child(2)", timeout=60_000)  # two frames read by the server, decided
        assert page.inner_text("#error").strip() == ""
        browser.close()
