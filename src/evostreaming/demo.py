"""The main job behind ``make demo``.

With the pocket model (committed weights): write a small held-out ShapesWorld streaming
benchmark, evaluate the vanilla pocket model on it with RealStreamEval (it decides causally when
to speak), and print the table. Without it: stream a procedural clip through a tiny random-weight
Qwen2.5-VL, which shows the runtime only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def _moving_square(n: int, size: int = 112):
    for k in range(n):
        frame = np.full((size, size, 3), 235, np.uint8)
        x = int((size - 24) * k / max(1, n - 1))
        frame[44:68, x : x + 24] = (220, 30, 30)
        yield frame


def run_demo(output: Path, *, quick: bool = False, console: Console | None = None) -> Path:
    from evostreaming.models.pocket import pocket_available

    console = console or Console()
    output.mkdir(parents=True, exist_ok=True)
    if pocket_available():
        return _pocket_demo(output, quick=quick, console=console)
    return _tiny_demo(output, quick=quick, console=console)


def _pocket_demo(output: Path, *, quick: bool, console: Console) -> Path:
    from evostreaming.eval.policies import SessionPolicy
    from evostreaming.eval.protocol import run_protocol
    from evostreaming.eval.report import write_report
    from evostreaming.eval.schema import load_samples
    from evostreaming.models.registry import load_model
    from evostreaming.stream.session import SessionConfig
    from evostreaming.world.bench import make_bench

    n = 10 if quick else 50
    bench = output / "bench"
    if not (bench / "samples.jsonl").exists():
        make_bench(seed=0, n=n, output=bench)
    samples = load_samples(bench / "samples.jsonl")
    for s in samples:
        s.video = str(bench / s.video)
    console.print(
        f"[bold]demo[/]: vanilla pocket model on {len(samples)} held-out ShapesWorld streams (RealStreamEval)"
    )
    loaded = load_model("pocket")
    policy = SessionPolicy(loaded, lambda sample: SessionConfig(max_new_tokens=16))
    run_dir = output / "vanilla"
    run_protocol(samples, policy, run_dir, console=console)
    summary = write_report(run_dir, timelines=5)
    table = Table(title="RealStreamEval, vanilla pocket model")
    for col in ("Overall", "RTVP", "BT", "FAR", "R_ans", "premature samples"):
        table.add_column(col, justify="right")
    r, d = summary["regimes"], summary["diagnostics"]
    table.add_row(
        f"{summary['overall']:.2f}",
        *(f"{r.get(k, 0):.2f}" for k in ("RTVP", "BT", "FAR")),
        f"{d['r_ans']:.3f}",
        str(d["premature_samples"]),
    )
    console.print(table)
    console.print(f"report: {run_dir / 'report.md'}")
    return run_dir


def _tiny_demo(output: Path, *, quick: bool, console: Console) -> Path:
    from evostreaming.models.registry import load_model
    from evostreaming.stream.memory import MemoryPolicy
    from evostreaming.stream.runner import UserTurn, run_stream
    from evostreaming.stream.session import SessionConfig, StreamingSession
    from evostreaming.video.sources import VideoFileSource
    from evostreaming.video.writer import write_mp4

    seconds = 20 if quick else 60
    clip = write_mp4(_moving_square(seconds * 2), output / "moving_square.mp4", fps=2)
    console.print(f"[bold]demo[/]: {seconds} s procedural clip -> {clip}; model tiny:qwen2_5_vl (random weights)")
    loaded = load_model("tiny:qwen2_5_vl")
    config = SessionConfig(silence_threshold=0.5, max_new_tokens=8, memory=MemoryPolicy(window_frames=8))
    session = StreamingSession(loaded.model, loaded.processor, loaded.adapter, config)
    turns = [UserTurn(0.0, "Tell me when the red square reaches the right edge."), UserTurn(10.0, "What color is it?")]
    jsonl = output / "steps.jsonl"
    results = run_stream(session, VideoFileSource(clip, fps=0.5), turns, jsonl=jsonl)
    table = Table(title="stream steps (0.5 fps, window 8 frames)")
    for col in ("time", "action", "P(silent)", "latency ms", "cache tokens", "text"):
        table.add_column(col)
    for r in results:
        table.add_row(
            f"{r.time:.1f}",
            r.action,
            f"{r.silence_prob:.2f}",
            f"{r.latency_s * 1000:.0f}",
            str(r.cache_tokens),
            repr(r.text[:40]),
        )
    console.print(table)
    console.print(f"steps written to {jsonl}")
    return jsonl
