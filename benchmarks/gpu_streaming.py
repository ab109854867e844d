"""Streaming at real size: per-step latency, sustained frames per second, peak memory, concurrency,
incremental vs naive re-encoding vs bounded memory, and the decision's overhead.

    # one GPU, the 7-8B twins in bf16 (real:<checkpoint>: released configs, random weights)
    python benchmarks/gpu_streaming.py --json docs/bench/gpu_streaming.json
    # this CPU, the smallest twin
    python benchmarks/gpu_streaming.py --models real:HuggingFaceTB/SmolVLM2-256M-Video-Instruct \
        --frames 24 --naive-frames 12 --concurrency 1 4 --json docs/bench/cpu_streaming_smallest.json

Every session stays silent at every step (silence threshold 0), so a step is one frame's user turn
plus the silence decision, with no reply-length noise. Per model:

* one stream: per-step latency p50/p95 over ``--frames`` 448x448 frames (unbounded memory) and the
  sustained rate (frames per second = 1 / mean step time);
* bounded: the same with the last ``--window`` frames kept; naive: one offline forward over the
  whole conversation at every step (``--naive-frames`` steps), as an offline model must;
* N concurrent sessions (``--concurrency``) stepped round-robin on one device: aggregate frames per
  second and per-step latency (sessions share the device; no cross-session batching);
* decision overhead: a step's time over the time of the model's forward over that step's frame
  tokens (timed by forward hooks in the same step; the floor is 1.0: the rest is preprocessing,
  positions, the marker's tokens and the cache crop);
* peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's resident memory on a CPU.

Writes JSON and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from evostreaming.bench.streaming import rss_bytes, run_naive, synthetic_frames
from evostreaming.models.loading import load_model
from evostreaming.models.placement import Placement
from evostreaming.stream.memory import MemoryPolicy, cache_bytes
from evostreaming.stream.session import SessionConfig, StreamingSession

DEFAULT_MODELS = [
    "real:Qwen/Qwen2.5-VL-7B-Instruct",
    "real:Qwen/Qwen3-VL-8B-Instruct",
    "real:OpenGVLab/InternVL3_5-8B-HF",
]
PARTS = ["incremental", "bounded", "naive", "concurrent"]
QUESTION = "Tell me when the red square reaches the right edge."
FRAME_SIDE = 448


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str, rss_seen: int = 0) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 1e9
    return max(rss_seen, rss_bytes()) / 1e9


class ForwardTimer:
    """Wall time of each forward of ``model`` (pre/post hooks, synchronized on a GPU)."""

    def __init__(self, model, device: str):
        self.device, self.times, self._t0 = device, [], 0.0
        self._hooks = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, *_):
        _sync(self.device)
        self._t0 = time.perf_counter()

    def _post(self, *_):
        _sync(self.device)
        self.times.append(time.perf_counter() - self._t0)

    def close(self):
        for h in self._hooks:
            h.remove()


def _session(loaded, window: int | None) -> StreamingSession:
    cfg = SessionConfig(silence_threshold=0.0, memory=MemoryPolicy(window_frames=window, max_text_turns=8))
    return StreamingSession(loaded.model, loaded.processor, loaded.adapter, cfg)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def one_stream(loaded, device: str, n: int, window: int | None) -> dict:
    session, frames = _session(loaded, window), list(synthetic_frames(n, 0, FRAME_SIDE))
    timer = ForwardTimer(loaded.model, device)
    lat, overhead, kv, rss_max = [], [], [], 0
    _peak_reset(device)
    try:
        for k, frame in enumerate(frames):
            timer.times.clear()
            _sync(device)
            t0 = time.perf_counter()
            session.step(frame, 2.0 * k, QUESTION if k == 0 else None)
            _sync(device)
            lat.append(time.perf_counter() - t0)
            overhead.append(lat[-1] / timer.times[0])  # the first forward feeds the frame's tokens
            kv.append(cache_bytes(session.cache))
            rss_max = max(rss_max, rss_bytes())
    finally:
        timer.close()
    return {
        "steps": n,
        "p50_ms": 1000 * _pct(lat, 50),
        "p95_ms": 1000 * _pct(lat, 95),
        "fps": n / sum(lat),
        "peak_memory_gb": _peak_gb(device, rss_max),
        "kv_cache_mb_at_last": kv[-1] / 1e6,
        "cache_tokens_at_last": session.cache_tokens,
        "decision_overhead_p50": _pct(overhead, 50),
        "decision_overhead_p95": _pct(overhead, 95),
        "latency_ms": [1000 * x for x in lat],
    }


def concurrent(loaded, device: str, sessions: int, n: int, window: int | None) -> dict:
    pool = [_session(loaded, window) for _ in range(sessions)]
    frames = list(synthetic_frames(n, 0, FRAME_SIDE))
    lat, rss_max = [], 0
    _peak_reset(device)
    _sync(device)
    start = time.perf_counter()
    for k, frame in enumerate(frames):
        for s in pool:
            t0 = time.perf_counter()
            s.step(frame, 2.0 * k, QUESTION if k == 0 else None)
            _sync(device)
            lat.append(time.perf_counter() - t0)
        rss_max = max(rss_max, rss_bytes())
    total = time.perf_counter() - start
    return {
        "sessions": sessions,
        "steps_each": n,
        "aggregate_fps": sessions * n / total,
        "per_session_fps": n / total,
        "p50_ms": 1000 * _pct(lat, 50),
        "p95_ms": 1000 * _pct(lat, 95),
        "peak_memory_gb": _peak_gb(device, rss_max),
    }


def naive(loaded, device: str, n: int) -> dict:
    _peak_reset(device)
    res = run_naive(loaded, n, 0, FRAME_SIDE)  # the same frames as the incremental run
    return {
        "steps": n,
        "p50_ms": 1000 * _pct(res["latency_s"], 50),
        "last_ms": 1000 * res["latency_s"][-1],
        "tokens_at_last": res["tokens"][-1],
        "peak_memory_gb": _peak_gb(device, max(res["rss_bytes"])),
        "latency_ms": [1000 * x for x in res["latency_s"]],
    }


def measure(spec: str, args) -> dict:
    placement = Placement(device=args.device, dtype=args.dtype, attn=args.attn)
    t0 = time.perf_counter()
    loaded = load_model(spec, placement=placement)
    load_s = time.perf_counter() - t0
    device = placement.resolved_device()
    row = {
        "model": spec,
        "params_b": sum(p.numel() for p in loaded.model.parameters()) / 1e9,
        "load_s": load_s,
        **placement.describe(),
        "visual_tokens_per_frame": SessionConfig().visual_tokens_per_frame,
        "frame": f"{FRAME_SIDE}x{FRAME_SIDE}",
    }
    if args.warmup:  # first CUDA kernels and allocator growth: measured runs start warm
        one_stream(loaded, device, args.warmup, None)
    parts = set(args.parts)
    if "incremental" in parts:
        row["incremental"] = one_stream(loaded, device, args.frames, None)
    if "bounded" in parts:
        row["bounded"] = one_stream(loaded, device, args.frames, args.window)
    if "naive" in parts:
        row["naive"] = naive(loaded, device, args.naive_frames)
    if {"incremental", "naive"} <= parts:
        at = args.naive_frames - 1  # same step, same conversation: re-encoding vs incremental
        inc, nv = row["incremental"]["latency_ms"][at], row["naive"]["latency_ms"][at]
        row["speedup_vs_naive_at_last_naive_step"] = nv / inc
    if "concurrent" in parts:
        row["concurrent"] = [
            concurrent(loaded, device, n, args.concurrent_frames, args.window) for n in args.concurrency
        ]
    del loaded
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 4 * len(rows)), squeeze=False)
    for (ax1, ax2), r in zip(axes, rows, strict=True):
        for name, color in (("naive", "tab:red"), ("incremental", "tab:blue"), ("bounded", "tab:green")):
            if name not in r:
                continue
            lat = r[name]["latency_ms"]
            ax1.plot(range(1, len(lat) + 1), lat, label=name, color=color, lw=1)
        ax1.set_yscale("log")
        ax1.set_xlabel("frame")
        ax1.set_ylabel("step latency (ms)")
        ax1.set_title(f"{r['model']} ({r['device']}, {r['dtype']})", fontsize=9)
        ax1.legend()
        if "concurrent" not in r:
            ax2.axis("off")
            continue
        sessions = [c["sessions"] for c in r["concurrent"]]
        ax2.bar([str(s) for s in sessions], [c["aggregate_fps"] for c in r["concurrent"]], color="tab:purple")
        ax2.set_xlabel("concurrent sessions")
        ax2.set_ylabel("aggregate frames / s")
        ax2.set_title(f"peak memory {max(c['peak_memory_gb'] for c in r['concurrent']):.1f} GB", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _without_series(v):
    return {a: b for a, b in v.items() if a != "latency_ms"} if isinstance(v, dict) else v


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--frames", type=int, default=120, help="steps of the one-stream runs")
    ap.add_argument("--naive-frames", type=int, default=40, help="steps of the naive re-encoding run")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--concurrent-frames", type=int, default=30, help="steps per session in the concurrent runs")
    ap.add_argument("--window", type=int, default=16, help="frames kept by the bounded run")
    ap.add_argument("--warmup", type=int, default=8, help="unmeasured steps of one stream before measuring")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS, help="which measurements to run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--attn", default="auto")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    if "naive" in args.parts and args.naive_frames > args.frames:
        ap.error("--naive-frames must be at most --frames")
    rows = []
    for spec in args.models:
        rows.append(measure(spec, args))
        brief = {k: _without_series(v) for k, v in rows[-1].items()}
        print(json.dumps(brief))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))  # progress kept
    plot(rows, args.json.with_suffix(".png"))
    return {"rows": rows}


if __name__ == "__main__":
    main()
