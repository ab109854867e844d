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
