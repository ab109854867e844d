"""The main job behind ``make demo``.

With the pocket model (committed weights): the EvoStreaming loop, see ``evolve/demo.py``.
Without it: stream a procedural clip through a tiny random-weight
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


def run_demo(
    output: Path,
    *,
    quick: bool = False,
    console: Console | None = None,
    replay: float | None = None,
    replay_annotations: float = 0.0,
) -> Path:
    """The main job on the pocket model (``replay=None``: ``DemoConfig``'s), else the tiny-model demo."""
    from evostreaming.models.pocket import pocket_available

    console = console or Console()
    if pocket_available():
        from evostreaming.evolve.demo import DemoConfig, run_main_job

        cfg = DemoConfig.quick() if quick else DemoConfig()
        cfg.replay_annotations = replay_annotations
        if replay is not None:
            cfg.replay = replay
        console.print("EvoStreaming main job on the pocket model" + (" (quick)" if quick else " (~10 min on 2 cores)"))
        run_main_job(output, cfg, console)  # checks the settings before creating anything
        return output / "report.md"
    output.mkdir(parents=True, exist_ok=True)
    return _tiny_demo(output, quick=quick, console=console)


def _tiny_demo(output: Path, *, quick: bool, console: Console) -> Path:
    from evostreaming.models.loading import load_model
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
