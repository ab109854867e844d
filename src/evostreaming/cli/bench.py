"""``evostreaming bench``: performance benchmarks (JSON + PNG)."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import App, check_json_out, console

app = App(help="Performance benchmarks (write JSON + PNG).", no_args_is_help=True)


def counts_flag(flag: str, text: str, lo: int, hi: int) -> list[int]:
    """A comma-separated list of whole numbers in [lo, hi], or a one-line error naming the flag."""
    parts = [x.strip() for x in text.split(",")]
    if not all(x.lstrip("-").isdigit() for x in parts):
        raise typer.BadParameter(f"{flag} takes whole numbers separated by commas, e.g. 1,4,16; got {text!r}")
    counts = [int(x) for x in parts]
    if not all(lo <= c <= hi for c in counts):
        raise typer.BadParameter(f"{flag} must lie in {lo}..{hi}; got {text!r}")
    return counts


def at_least(flag: str, value: int | None, lo: int) -> None:
    if value is not None and value < lo:
        raise typer.BadParameter(f"{flag} must be >= {lo}; got {value}")


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

    at_least("--frames", frames, 1)
    at_least("--window", window, 1)
    at_least("--naive-max", naive_max, 1)
    check_json_out(json_out)
    summary = run_benchmark(model, frames, window=window, naive_max=naive_max, json_out=json_out, seed=seed)
    console.print_json(data={k: v for k, v in summary.items() if k != "series"})


@app.command("engine")
def bench_engine(
    model: str = typer.Option("tiny:qwen2_5_vl", help="model spec (tiny:<family>, pocket, a checkpoint)"),
    sessions: str = typer.Option("1,4,16,32", help="session counts, e.g. 1,4,16,32"),
    frames: int = typer.Option(6, help="frames each session streams per measurement"),
    window: int = typer.Option(8, help="bounded memory: frames each session keeps (0 = unbounded)"),
    max_new_tokens: int = typer.Option(8, help="reply length of the replying sessions (one in four)"),
    max_batch_tokens: int = typer.Option(8192, help="new tokens per packed forward"),
    modes: str = typer.Option(",".join(("round-robin-2fwd", "round-robin", "batched")), help="which steppings"),
    dtype: str = typer.Option("auto", help="auto | float32 | bfloat16"),
    json_out: Path = typer.Option(Path("runs/bench/engine.json"), "--json", help="output JSON (PNG beside it)"),
) -> None:
    """Batched engine vs round-robin: frames/s, frame -> decision p50/p95, forwards and aten ops per frame."""
    from evostreaming.bench.engine import MODES, run_engine_benchmark

    counts = counts_flag("--sessions", sessions, 1, 256)
    chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
    if not chosen or not set(chosen) <= set(MODES):
        raise typer.BadParameter(f"--modes takes some of {', '.join(MODES)}; got {modes!r}")
    at_least("--frames", frames, 1)
    at_least("--window", window, 0)
    at_least("--max-new-tokens", max_new_tokens, 1)
    at_least("--max-batch-tokens", max_batch_tokens, 1)
    check_json_out(json_out)
    summary = run_engine_benchmark(
        model,
        counts,
        frames,
        window=window or None,
        max_new_tokens=max_new_tokens,
        max_batch_tokens=max_batch_tokens,
        modes=chosen,
        json_out=json_out,
        dtype=dtype,
    )
    console.print_json(data={k: v for k, v in summary.items() if k != "rows"})


@app.command("load")
def bench_load(
    model: str = typer.Option("pocket", help="model spec served by a local `evostreaming serve`"),
    adapter: str | None = typer.Option(None, help="a LoRA adapter for the served model"),
    max_sessions: int = typer.Option(4, help="the server's cap; levels run from 1 to cap + 1 sessions"),
    fps: float = typer.Option(0.5, help="frames per second each session sends"),
    seconds: float = typer.Option(30.0, help="stream length per level (bounded)"),
    levels: str | None = typer.Option(None, help="session counts to try, e.g. 1,4,8,16,17 (default 1..cap+1)"),
    batch: bool = typer.Option(True, "--batch/--round-robin", help="the server's worker: batched or one at a time"),
    json_out: Path = typer.Option(Path("runs/bench/serve_load.json"), "--json", help="output JSON"),
) -> None:
    """Load on a server on 127.0.0.1: sessions held vs refused, frame latency, drops, memory per session."""
    from evostreaming.bench.load import run_load

    if not (0 < fps <= 4 and 0 < seconds <= 600 and 1 <= max_sessions <= 64):
        raise typer.BadParameter("keep it bounded: 0 < fps <= 4, 0 < seconds <= 600, 1 <= max-sessions <= 64")
    counts = counts_flag("--levels", levels, 1, max_sessions + 1) if levels else None
    check_json_out(json_out)
    summary = run_load(model, max_sessions, fps, seconds, json_out, adapter, counts, batch=batch)
    console.print_json(data={k: v for k, v in summary.items() if k != "levels"})
