"""The batched engine against round-robin stepping: N sessions, each streaming the same number of frames.

Every tick, each of the N sessions gets its next frame (all at once, as N live streams at the same fps
would); one session in four has a question at its first frame and replies (``max_new_tokens`` tokens),
the others stay silent. Three ways of stepping the same work:

* ``round-robin-2fwd``: one session at a time, the silence marker's head in a second forward (before);
* ``round-robin``: one session at a time, one forward per silent frame;
* ``batched``: one packed forward per tick for every session with work (``stream.engine``).

Reported per (mode, N): aggregate frames per second, frame -> decision p50/p95 (from the tick's start),
forwards per frame, aten ops per frame (``torch.profiler`` over one steady tick: a stand-in for kernel
launches), peak memory; and, per mode, whether every session took the same actions as round-robin.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from evostreaming.bench.streaming import rss_bytes, synthetic_frames
from evostreaming.models.loading import load_model
from evostreaming.stream.engine import BatchEngine
from evostreaming.stream.memory import MemoryPolicy
from evostreaming.stream.session import SessionConfig, StreamingSession

MODES = ("round-robin-2fwd", "round-robin", "batched")
QUESTION = "Tell me when the red square reaches the right edge."


def _config(i: int, window: int | None, max_new_tokens: int) -> SessionConfig:
    replies = i % 4 == 0
    return SessionConfig(
        silence_threshold=1.0 if replies else 0.0,  # respond at every frame / stay silent
        max_new_tokens=max_new_tokens,
        memory=MemoryPolicy(window_frames=window, max_text_turns=8),
    )


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss_bytes()


def run_mode(loaded, mode: str, sessions: int, frames: int, *, window, max_new_tokens, max_batch_tokens, seed=0):
    device = loaded.model.get_input_embeddings().weight.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    engine = BatchEngine(loaded.model, max_batch_tokens=max_batch_tokens) if mode == "batched" else None
    pool = []
    for i in range(sessions):
        s = StreamingSession(
            loaded.model,
            loaded.processor,
            loaded.adapter,
            _config(i, window, max_new_tokens),
            speculate=mode != "round-robin-2fwd",
        )
        pool.append(engine.attach(s) if engine else s)
    streams = [list(synthetic_frames(frames + 1, seed + i)) for i in range(sessions)]
    latency, actions = [], [[] for _ in range(sessions)]

    def tick(k: int) -> list[float]:
        start = time.perf_counter()
        decided = [0.0] * sessions

        def hook(i):
            def on_decision(_):
                _sync(device)
                decided[i] = time.perf_counter() - start

            return on_decision

        texts = [QUESTION if (k == 0 and i % 4 == 0) else None for i in range(sessions)]
        if engine:
            tickets = [
                engine.submit(pool[i], streams[i][k], 2.0 * k, texts[i], on_decision=hook(i)) for i in range(sessions)
            ]
            while engine.busy:
                engine.tick()
            engine.drain()
            results = [t.result for t in tickets]
        else:
            results = [pool[i].step(streams[i][k], 2.0 * k, texts[i], on_decision=hook(i)) for i in range(sessions)]
        _sync(device)
        for i, r in enumerate(results):
            actions[i].append(r.action)
        return decided

    start = time.perf_counter()
    for k in range(frames):
        latency += tick(k)
    total = time.perf_counter() - start
    counted = engine.stats.forwards if engine else sum(s.forwards for s in pool)
    # one more tick under the profiler, outside the timings: aten ops per frame
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        tick(frames)
    ops = sum(1 for e in prof.events() if e.name.startswith("aten::")) / sessions
    forwards = counted
    lat = np.array(latency) * 1000
    return {
        "mode": mode,
        "sessions": sessions,
        "frames_per_session": frames,
        "aggregate_fps": sessions * frames / total,
        "decision_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))},
        "forwards_per_frame": forwards / (sessions * frames),
        "aten_ops_per_frame": ops,
        "peak_memory_mb": _peak(device) / 1e6,
        "actions": actions,
    }


def run_engine_benchmark(
    model: str,
    sessions: list[int],
    frames: int,
    *,
    window: int | None = 8,
    max_new_tokens: int = 8,
    max_batch_tokens: int = 8192,
    modes: tuple[str, ...] = MODES,
    json_out: Path | None = None,
    warmup: int = 2,
    dtype: str = "auto",
) -> dict:
    torch.manual_seed(0)
    loaded = load_model(model, dtype=dtype)
    run_mode(loaded, "batched", 2, warmup, window=window, max_new_tokens=2, max_batch_tokens=max_batch_tokens)
    summary = {
        "model": model,
        "device": str(loaded.model.get_input_embeddings().weight.device),
        "dtype": str(loaded.model.dtype),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "frames_per_session": frames,
        "window_frames": window,
        "max_new_tokens": max_new_tokens,
        "replying_sessions": "one in four (threshold 1.0); the others silent (threshold 0.0)",
        "rows": [],
    }
    for n in sessions:
        level = []
        for mode in modes:
            row = run_mode(
                loaded, mode, n, frames, window=window, max_new_tokens=max_new_tokens, max_batch_tokens=max_batch_tokens
            )
            level.append(row)
        # the same actions whatever the stepping (exactness, checked on the benchmark's own streams)
        ref = level[0]["actions"]
        base = next((r for r in level if r["mode"] == "round-robin"), None)
        for r in level:
            r[f"same_actions_as_{modes[0]}"] = r["actions"] == ref
            if base is not None:
                r["fps_vs_round_robin"] = r["aggregate_fps"] / base["aggregate_fps"]
        for r in level:
            r.pop("actions")
            print(json.dumps(r), flush=True)
        summary["rows"] += level
        if json_out:  # after every level: a run cut short (a time limit) keeps what it measured
            json_out = Path(json_out)
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(summary, indent=1))
            plot_engine(summary, json_out.with_suffix(".png"))
    return summary


def plot_engine(summary: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, style in zip(MODES, ("--o", "-s", "-^"), strict=True):
        rows = [r for r in summary["rows"] if r["mode"] == mode]
        if not rows:
            continue
        n = [r["sessions"] for r in rows]
        a1.plot(n, [r["aggregate_fps"] for r in rows], style, label=mode)
        a2.plot(n, [r["decision_ms"]["p95"] for r in rows], style, label=mode)
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sessions")
        ax.legend()
    a1.set_ylabel("frames / s (all sessions)")
    a1.set_title(f"{summary['model']} on {summary['device']}")
    a2.set_ylabel("frame -> decision p95 (ms)")
    a2.set_yscale("log")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
