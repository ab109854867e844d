"""``evostreaming bench``: performance benchmarks (JSON + PNG)."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import App, console

app = App(help="Performance benchmarks (write JSON + PNG).", no_args_is_help=True)


@app.command("streaming")
def bench_streaming(
    model: str = typer.Option("tiny:qwen2_5_vl", help="model spec (tiny:<family> recommended)"),
    frames: int = typer.Option(300, help="number of frames to stream"),
    window: int = typer.Option(16, help="bounded session: frames kept in the cache"),
    naive_max: int | None = typer.Option(None, help="stop the naive baseline after this many frames"),
    json_out: Path = typer.Option(Path("runs/bench/streaming_latency.json"), "--json", help="output JSON"),
    seed: int = typer.Option(0),
) -> None:
    """Per-step latency and memory: naive re-encoding vs incremental vs bounded sessions."""
    from evostreaming.bench.streaming import run_benchmark

    summary = run_benchmark(model, frames, window=window, naive_max=naive_max, json_out=json_out, seed=seed)
    console.print_json(data={k: v for k, v in summary.items() if k != "series"})


@app.command("load")
def bench_load(
    model: str = typer.Option("pocket", help="model spec served by a local `evostreaming serve`"),
    adapter: str | None = typer.Option(None, help="a LoRA adapter for the served model"),
    max_sessions: int = typer.Option(4, help="the server's cap; levels run from 1 to cap + 1 sessions"),
    fps: float = typer.Option(0.5, help="frames per second each session sends"),
    seconds: float = typer.Option(30.0, help="stream length per level (bounded)"),
    levels: str | None = typer.Option(None, help="session counts to try, e.g. 1,4,8,16,17 (default 1..cap+1)"),
    json_out: Path = typer.Option(Path("runs/bench/serve_load.json"), "--json", help="output JSON"),
) -> None:
    """Load on a server on 127.0.0.1: sessions held vs refused, frame latency, drops, memory per session."""
    from evostreaming.bench.load import run_load

    if not (0 < fps <= 4 and 0 < seconds <= 600 and 1 <= max_sessions <= 64):
        raise typer.BadParameter("keep it bounded: 0 < fps <= 4, 0 < seconds <= 600, 1 <= max-sessions <= 64")
    counts = [int(x) for x in levels.split(",")] if levels else None
    if counts and not all(1 <= c <= max_sessions + 1 for c in counts):
        raise typer.BadParameter(f"--levels must lie in 1..{max_sessions + 1} (the cap + 1)")
    summary = run_load(model, max_sessions, fps, seconds, json_out, adapter, counts)
    console.print_json(data={k: v for k, v in summary.items() if k != "levels"})
