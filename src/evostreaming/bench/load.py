"""Load on `evostreaming serve`, from loopback only: 1 ... max+1 concurrent sessions at a fixed fps.

For each number of sessions N, N clients connect at once to a server started as a subprocess on
127.0.0.1, stream a ShapesWorld clip's frames at ``fps`` for ``seconds`` seconds and ask one question
after the first frame. Reported per N: sessions held vs refused; per-frame latency (frame sent ->
its ``frame.decision``) p50/p95/p99; question -> first reply token and -> reply done; frames dropped
by reason; the server's resident memory per held session against the cache bytes the sessions
report. Bounded in count (N <= max+1) and in time (``seconds`` per level).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

QUESTION = "Tell me when a new shape appears."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _frames(n: int) -> list[np.ndarray]:
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.scene import render_frames

    frames: list[np.ndarray] = []
    seed = 0
    while len(frames) < n:
        frames += [f for _, f in render_frames(generate_scene(seed), fps=0.5)]
        seed += 1
    return frames[:n]


async def _session(url: str, frames: list[np.ndarray], fps: float, out: dict) -> None:
    from websockets.exceptions import ConnectionClosed

    from evostreaming.serve.client import RealtimeClient

    sent: dict[int, float] = {}
    lat: list[float] = []
    dropped: Counter = Counter()
    asked_at = first_token = done_at = None
    try:
        async with RealtimeClient(url) as client:
            await client.update(fps=fps)

            async def reader():
                nonlocal first_token, done_at
                async for ev in client.events():
                    kind = ev.get("type")
                    if kind == "frame.decision" and ev["seq"] in sent:
                        lat.append(time.perf_counter() - sent[ev["seq"]])
                    elif kind == "frame.dropped":
                        dropped[ev["reason"]] += 1
                    elif kind == "response.output_text.delta" and asked_at and first_token is None:
                        first_token = time.perf_counter()
                    elif kind == "response.done" and asked_at and done_at is None:
                        done_at = time.perf_counter()
                    elif kind == "session.stats":
                        out["stats"] = ev

            task = asyncio.create_task(reader())
            start = time.perf_counter()
            for k, frame in enumerate(frames):
                await asyncio.sleep(max(0.0, start + k / fps - time.perf_counter()))  # the stream's own pace
                sent[k] = time.perf_counter()
                await client.send_frame(frame, k, k / fps)
                if k == 0:
                    asked_at = time.perf_counter()
                    await client.ask(QUESTION)
            await asyncio.sleep(2.0 / fps)  # let the last frames be decided at the stream's pace
            await client.close_session()
            await task
        out.update(held=True)
    except (ConnectionError, ConnectionClosed, OSError) as exc:
        out.update(held=False, error=str(exc))
    out.update(
        latency_s=lat,
        dropped=dict(dropped),
        sent=len(sent),
        first_token_s=(first_token - asked_at) if first_token and asked_at else None,
        done_s=(done_at - asked_at) if done_at and asked_at else None,
    )


async def _level(url: str, n: int, frames, fps: float, pid: int) -> dict:
    outs = [{} for _ in range(n)]
    peak = [0]
    stop = asyncio.Event()

    async def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes(pid))
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*[_session(url, frames, fps, o) for o in outs])
    stop.set()
    await watcher
    held = [o for o in outs if o.get("held") and o.get("stats")]
    lat = np.array([x for o in held for x in o["latency_s"]]) * 1000
    sent = sum(o["sent"] for o in held)
    dropped = Counter()
    for o in held:
        dropped.update(o["dropped"])
    cache = [o["stats"].get("cache_bytes", 0) for o in held]
    q = [o["first_token_s"] for o in held if o["first_token_s"] is not None]
    d = [o["done_s"] for o in held if o["done_s"] is not None]
    return {
        "sessions": n,
        "held": len(held),
        "refused": n - len(held),
        "frames_sent": sent,
        "frames_dropped": dict(dropped),
        "dropped_fraction": sum(dropped.values()) / sent if sent else 0.0,
        "latency_ms": {f"p{p}": float(np.percentile(lat, p)) for p in (50, 95, 99)} if lat.size else {},
        "question_to_first_token_s": float(np.median(q)) if q else None,
        "question_to_done_s": float(np.median(d)) if d else None,
        "server_rss_peak_mb": peak[0] / 1e6,
        "cache_mb_per_session": float(np.mean(cache)) / 1e6 if cache else 0.0,
    }


def run_load(
    model: str,
    max_sessions: int,
    fps: float,
    seconds: float,
    json_out: Path,
    adapter: str | None = None,
    levels: list[int] | None = None,
    *,
    batch: bool = True,
) -> dict:
    port = _free_port()
    cmd = [sys.executable, "-m", "evostreaming.cli", "serve", model, "--port", str(port)]
    cmd += ["--max-sessions", str(max_sessions), "--max-new-tokens", "12"]
    if adapter:
        cmd += ["--adapter", adapter]
    cmd += ["--batch" if batch else "--round-robin"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log: list[str] = []
    for line in proc.stderr:
        log.append(line)
        if "Uvicorn running on" in line:
            break
    if proc.poll() is not None:
        raise RuntimeError("the server did not start:\n" + "".join(log[-20:]))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    frames = _frames(max(2, int(seconds * fps)))
    idle_rss = _rss_bytes(proc.pid)
    counts = levels or list(range(1, max_sessions + 2))
    levels = []
    try:
        for n in counts:
            levels.append(asyncio.run(_level(url, n, frames, fps, proc.pid)))
            print(json.dumps(levels[-1]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = [lv for lv in levels if lv["refused"] == 0 and lv["dropped_fraction"] < 0.01]
    summary = {
        "model": model,
        "adapter": adapter,
        "fps": fps,
        "seconds_per_level": seconds,
        "max_sessions": max_sessions,
        "worker": "batched" if batch else "round-robin",
        "server_idle_rss_mb": idle_rss / 1e6,
        "most_sessions_held_under_1pct_drops": max((lv["held"] for lv in ok), default=0),
        "levels": levels,
    }
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(summary, indent=1))
    _plot(summary, json_out.with_suffix(".png"))
    return summary


def _plot(summary: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lv = summary["levels"]
    n = [x["sessions"] for x in lv]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for p, style in ((50, "-o"), (95, "-s"), (99, "-^")):
        a1.plot(n, [x["latency_ms"].get(f"p{p}", np.nan) for x in lv], style, label=f"p{p}")
    a1.set_xlabel("concurrent sessions")
    a1.set_ylabel("frame -> decision (ms)")
    a1.set_title(f"{summary['model']} at {summary['fps']} fps")
    a1.legend()
    a2.bar([str(x) for x in n], [x["held"] for x in lv], label="held")
    a2.bar([str(x) for x in n], [x["refused"] for x in lv], bottom=[x["held"] for x in lv], label="refused")
    a2.set_xlabel("sessions opened")
    a2.set_ylabel("sessions")
    a2.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
