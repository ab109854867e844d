"""``evostreaming eval``: RealStreamEval runs, re-scoring, and OVO-Bench's original scorer."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from evostreaming.cli.common import (
    MODEL_HELP,
    AdapterOpt,
    JudgeOpt,
    SilenceThresholdOpt,
    TimelinesOpt,
    console,
    err,
    fail,
)
from evostreaming.eval.benchmarks import benchmark_help
from evostreaming.eval.policies import BASELINES

app = typer.Typer(help="RealStreamEval and OVO-Bench scoring.", no_args_is_help=True)


def _judge(spec: str, output: Path):
    from evostreaming.eval.judges import make_judge

    try:
        return make_judge(spec, cache_dir=output / "judge-cache")
    except ValueError as exc:
        fail(str(exc))


@app.command("run")
def eval_run(
    data: Path = typer.Option(..., help="benchmark file or folder"),
    output: Path = typer.Option(..., help="output folder (re-running resumes)"),
    benchmark: str = typer.Option("jsonl", help=benchmark_help()),
    videos: Path | None = typer.Option(None, help="folder the samples' video paths are relative to"),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    baseline: str | None = typer.Option(None, help=" | ".join(BASELINES.names())),
    adapter: AdapterOpt = None,
    judge: JudgeOpt = "rule",
    fps: float | None = typer.Option(None, help="override the samples' frame rate (default 0.5)"),
    limit: int | None = typer.Option(None, help="only the first N samples"),
    silence_threshold: SilenceThresholdOpt = None,
    memory_window: float = typer.Option(0.0, help="bounded memory, seconds of frames (0 = unbounded)"),
    max_new_tokens: int = typer.Option(48, help="longest response"),
    max_pixels: int = typer.Option(448 * 448, help="frame pixel budget"),
    timelines: TimelinesOpt = 50,
) -> None:
    """Run RealStreamEval: the model decides causally when to speak; then score and report."""
    from evostreaming.eval.benchmarks import load_benchmark
    from evostreaming.eval.policies import SessionPolicy, make_baseline
    from evostreaming.eval.protocol import run_protocol
    from evostreaming.eval.report import write_report
    from evostreaming.eval.schema import SampleFormatError

    if (model is None) == (baseline is None):
        fail("give exactly one of --model or --baseline")
    try:
        samples = load_benchmark(benchmark, data, videos, fps, limit)
    except (SampleFormatError, ValueError) as exc:
        fail(str(exc))
    scorer = _judge(judge, output)
    if baseline:
        try:
            policy = make_baseline(baseline)
        except ValueError as exc:
            fail(str(exc))
    else:
        from evostreaming.models import ModelLoadError, load_model
        from evostreaming.stream.memory import MemoryPolicy
        from evostreaming.stream.session import SessionConfig

        try:
            loaded = load_model(model, adapter_dir=str(adapter) if adapter else None)
        except (ModelLoadError, ValueError) as exc:
            fail(str(exc))

        def config_for(sample):
            window = math.ceil(memory_window * sample.fps) if memory_window > 0 else None
            return SessionConfig(
                silence_threshold=silence_threshold,
                max_new_tokens=max_new_tokens,
                memory=MemoryPolicy(window_frames=window),
            )

        policy = SessionPolicy(loaded, config_for)
    info = {
        "benchmark": benchmark,
        "data": str(data),
        "model": model,
        "baseline": baseline,
        "adapter": str(adapter) if adapter else None,
        "judge": judge,
    }
    run_protocol(samples, policy, output, console=err, max_pixels=max_pixels, run_info=info)
    summary = write_report(output, scorer, timelines=timelines)
    _print_summary(summary, output)


@app.command("report")
def eval_report(
    output: Path = typer.Argument(..., help="a folder written by 'eval run'"),
    judge: JudgeOpt = "rule",
    timelines: TimelinesOpt = 50,
) -> None:
    """Re-score saved trajectories (no model needed) and rewrite summary.json, report.md, timelines."""
    from evostreaming.eval.report import write_report

    try:
        summary = write_report(output, _judge(judge, output), timelines=timelines)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    _print_summary(summary, output)


def _print_summary(summary: dict, output: Path) -> None:
    from rich.table import Table

    table = Table(title=f"RealStreamEval ({output})")
    for col in ("Overall", "RTVP", "BT", "FAR", "R_ans", "premature", "judge failures"):
        table.add_column(col, justify="right")
    regs = summary["regimes"]
    d = summary["diagnostics"]
    table.add_row(
        f"{summary['overall']:.2f}",
        *(f"{regs[r]:.2f}" if r in regs else "-" for r in ("RTVP", "BT", "FAR")),
        f"{d['r_ans']:.3f}",
        str(d["premature_samples"]),
        str(d["judge_failures"]),
    )
    console.print(table)
    console.print(f"summary: {output / 'summary.json'}  report: {output / 'report.md'}")


@app.command("score-ovo")
def eval_score_ovo(
    annotations: Path = typer.Option(..., help="OVO-Bench annotation file (ovo_bench_new.json)"),
    predictions: Path = typer.Option(..., help="folder of prediction *.json files in OVO-Bench's format"),
    json_out: Path | None = typer.Option(None, "--json", help="write the scores here"),
) -> None:
    """Score predictions with OVO-Bench's original offline rules (for comparability)."""
    import json

    from rich.table import Table

    from evostreaming.eval.benchmarks.ovo.score import (
        OVOPredictionError,
        check_against_annotations,
        load_predictions,
        score_predictions,
    )

    for path in (annotations, predictions):
        if not path.exists():
            fail(f"{path}: no such file or folder")
    try:
        preds = load_predictions(predictions)
        coverage = check_against_annotations(preds, annotations)
        result = score_predictions(preds)
    except OVOPredictionError as exc:
        fail(str(exc))
    result["coverage"] = coverage
    table = Table(title=f"OVO-Bench (original protocol): {predictions}")
    table.add_column("task / category")
    table.add_column("score", justify="right")
    table.add_column("items", justify="right")
    for task, score in result["tasks"].items():
        table.add_row(task, f"{score:.2f}", str(result["counts"][task]))
    for cat, score in result["categories"].items():
        table.add_row(f"[bold]{cat}[/]", f"[bold]{score:.2f}[/]", "")
    table.add_row("[bold]overall[/]", f"[bold]{result['overall']:.2f}[/]", "")
    console.print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
