"""Streaming latency benchmark: naive re-encoding vs incremental vs bounded sessions.

* naive: at every step, one offline forward over the whole conversation so far (what an
  offline model does when used as a streaming one), including the silence marker it scores;
* incremental: ``StreamingSession`` with unbounded memory (only the new tokens are fed);
* bounded: ``StreamingSession`` keeping the last ``window`` frames.

All three take the same decision (silent at every step, so no response length noise).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from evostreaming.models.loading import load_model
from evostreaming.models.placement import to_model
from evostreaming.stream.memory import MemoryPolicy
from evostreaming.stream.session import SessionConfig, StreamingSession


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        return 0


def synthetic_frames(n: int, seed: int, size: int = 112):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    for k in range(n):
        frame = base.copy()
        x = (7 * k) % (size - 16)
        frame[20:36, x : x + 16] = (255, 0, 0)
        yield frame


def _session(loaded, window: int | None) -> StreamingSession:
    cfg = SessionConfig(silence_threshold=0.0, memory=MemoryPolicy(window_frames=window, max_text_turns=8))
    return StreamingSession(loaded.model, loaded.processor, loaded.adapter, cfg)


def run_session(loaded, n: int, window: int | None, seed: int) -> dict:
    session = _session(loaded, window)
    lat, kv, rss, cache_tokens = [], [], [], []
    for k, frame in enumerate(synthetic_frames(n, seed)):
        text = "Tell me when the red square reaches the right edge." if k == 0 else None
        t0 = time.perf_counter()
        session.step(frame, k * 2.0, text)
        lat.append(time.perf_counter() - t0)
        kv.append(session.cache_bytes)
        rss.append(rss_bytes())
        cache_tokens.append(session.cache_tokens)
    return {"latency_s": lat, "kv_bytes": kv, "rss_bytes": rss, "cache_tokens": cache_tokens}


@torch.no_grad()
def run_naive(loaded, n: int, seed: int, size: int = 112) -> dict:
    # Build the conversation with a session that keeps its inputs, then time a from-scratch
    # forward over everything at each step (re-encoding every frame, as an offline model must).
    recorder = StreamingSession(
        loaded.model, loaded.processor, loaded.adapter, SessionConfig(silence_threshold=0.0), keep_inputs=True
    )
    marker_head = recorder._marker_ids[:-1]
    device = loaded.model.get_input_embeddings().weight.device
    lat, rss, tokens = [], [], []
    for k, frame in enumerate(synthetic_frames(n, seed, size)):
        text = "Tell me when the red square reaches the right edge." if k == 0 else None
        recorder.push_frame(frame, text)
        ids, mm = recorder.cached_inputs()
        ids = torch.cat([ids, torch.tensor(marker_head, dtype=torch.long)])
        inputs = to_model(loaded.model, loaded.adapter.offline_inputs(loaded.model, ids, mm))
        t0 = time.perf_counter()
        with torch.inference_mode():
            loaded.model(**inputs, logits_to_keep=len(marker_head) + 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        lat.append(time.perf_counter() - t0)
        rss.append(rss_bytes())
        tokens.append(int(ids.shape[0]))
        recorder.decide()
        recorder.logit_log.clear()
    return {"latency_s": lat, "rss_bytes": rss, "tokens": tokens}


def _median_around(series: list[float], index: int, half: int = 2) -> float:
    lo, hi = max(0, index - half), min(len(series), index + half + 1)
    return float(np.median(series[lo:hi]))


def run_benchmark(
    model: str,
    frames: int,
    *,
    window: int = 16,
    naive_max: int | None = None,
    json_out: Path | None = None,
    seed: int = 0,
) -> dict:
    torch.manual_seed(seed)
    loaded = load_model(model, dtype="float32")
    n_naive = min(frames, naive_max) if naive_max else frames
    # Bounded first, so its process-RSS series is not masked by the larger runs' allocator peaks.
    bounded = run_session(loaded, frames, window, seed)
    incremental = run_session(loaded, frames, None, seed)
    naive = run_naive(loaded, n_naive, seed)
    last = frames - 1
    ref = min(49, last)
    summary = {
        "model": model,
        "frames": frames,
        "window_frames": window,
        "naive_frames": n_naive,
        "torch_threads": torch.get_num_threads(),
        # Medians over 5 neighbouring steps, so one scheduler hiccup does not set a headline.
        "naive_step_s_at_last": _median_around(naive["latency_s"], n_naive - 1),
        "incremental_step_s_at_last": _median_around(incremental["latency_s"], last),
        "bounded_step_s_at_last": _median_around(bounded["latency_s"], last),
        "bounded_step_s_at_50": _median_around(bounded["latency_s"], ref),
        "speedup_vs_naive": _median_around(naive["latency_s"], n_naive - 1)
        / _median_around(incremental["latency_s"], n_naive - 1),
        "bounded_growth": _median_around(bounded["latency_s"], last) / _median_around(bounded["latency_s"], ref),
        "bounded_kv_bytes_max": max(bounded["kv_bytes"]),
        "bounded_kv_bytes_at_last": bounded["kv_bytes"][-1],
        "incremental_kv_bytes_at_last": incremental["kv_bytes"][-1],
        "series": {"naive": naive, "incremental": incremental, "bounded": bounded},
    }
    if json_out:
        json_out = Path(json_out)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=1))
        plot_benchmark(summary, json_out.with_suffix(".png"))
    return summary


def plot_benchmark(summary: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary["series"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, color in (("naive", "tab:red"), ("incremental", "tab:blue"), ("bounded", "tab:green")):
        lat = np.array(s[name]["latency_s"]) * 1000
        ax1.plot(np.arange(1, len(lat) + 1), lat, label=name, color=color, lw=1)
    ax1.set_xlabel("frame")
    ax1.set_ylabel("per-step latency (ms)")
    ax1.set_yscale("log")
    ax1.set_title(f"{summary['model']}: speedup vs naive x{summary['speedup_vs_naive']:.1f}")
    ax1.legend()
    for name, color in (("incremental", "tab:blue"), ("bounded", "tab:green")):
        kv = np.array(s[name]["kv_bytes"]) / 1e6
        ax2.plot(np.arange(1, len(kv) + 1), kv, label=f"{name} KV cache", color=color)
    ax2.set_xlabel("frame")
    ax2.set_ylabel("KV cache (MB)")
    ax2.set_title(f"bounded growth (step {summary['frames']} / step 50): x{summary['bounded_growth']:.2f}")
    ax2.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
