"""``evostreaming eval``: RealStreamEval runs, re-scoring, and OVO-Bench's original scorer."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import (
    App,
    JudgeOpt,
    OverwriteOpt,
    TimelinesOpt,
    config_options,
    console,
    err,
    fail,
)
from evostreaming.eval.config import EvalRunConfig

app = App(help="RealStreamEval and OVO-Bench scoring.", no_args_is_help=True)


@app.command("run")
@config_options(EvalRunConfig, into="cfg")
def eval_run(
    output: Path = typer.Option(..., help="output folder (re-running the same job resumes it)"),
    overwrite: OverwriteOpt = False,
    timelines: TimelinesOpt = 50,
    cfg: EvalRunConfig = None,
) -> None:
    """Run RealStreamEval: the model decides causally when to speak; then score and report."""
    from evostreaming.eval.protocol import TooManyFailures
    from evostreaming.eval.run import run_eval

    # the other flags are EvalRunConfig's fields (eval/config.py: their help and their checks)
    try:
        summary = run_eval(cfg, output, console=err, overwrite=overwrite, timelines=timelines)
    except TooManyFailures as exc:
        fail(str(exc), code=1)
    if summary is not None:  # None: a worker process of a multi-process run (rank 0 reports)
        _print_summary(summary, output)


@app.command("report")
def eval_report(
    output: Path = typer.Argument(..., help="a folder written by 'eval run'"),
    judge: JudgeOpt = "rule",
    timelines: TimelinesOpt = 50,
    as_: str = typer.Option(
        "realstreameval",
        "--as",
        help="realstreameval (default), or a benchmark whose own metric scores the run: streamingbench, "
        "proactivevideoqa (PAUC; needs --judge openai:URL,model=NAME)",
    ),
) -> None:
    """Re-score saved trajectories (no model needed) and rewrite summary.json, report.md, timelines."""
    from evostreaming.eval.judges import make_judge
    from evostreaming.eval.report import write_report
    from evostreaming.utils.jobs import folder_lock

    if not (output / "trajectories.jsonl").exists():
        fail(f"{output}: no trajectories.jsonl; run 'evostreaming eval run --output {output}' first")
    if as_ != "realstreameval":
        _project(output, as_, judge)
        return
    scorer = make_judge(judge, cache_dir=output / "judge-cache")
    if hasattr(scorer, "check"):
        scorer.check()
    with folder_lock(output):
        summary = write_report(output, scorer, timelines=timelines)
    _print_summary(summary, output)


def _project(output: Path, name: str, judge: str) -> None:
    """A saved run scored by a benchmark's own metric (its registry entry's), beside RealStreamEval's."""
    import json

    from evostreaming.eval.benchmarks import BENCHMARKS
    from evostreaming.eval.schema import SampleFormatError
    from evostreaming.utils.jobs import folder_lock

    if name not in BENCHMARKS:
        fail(f"--as {name!r}: use realstreameval or one of {', '.join(BENCHMARKS.names())}")
    bench = BENCHMARKS.get(name)
    if bench.metric is None:
        fail(f"--as {name}: {bench.no_metric or 'this benchmark has no metric of its own; eval report DIR scores it'}")
    try:
        with folder_lock(output):
            summary = bench.metric.report(output, judge)
    except (SampleFormatError, ValueError) as exc:
        fail(str(exc))
    console.print_json(json.dumps({k: summary[k] for k in bench.metric.headline if k in summary}))


def _print_summary(summary: dict, output: Path) -> None:
    from rich.markup import escape
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
    if summary.get("samples_failed"):
        ran = summary["samples_total"] - summary["samples_failed"]
        err.print(
            f"[bold red]{summary['samples_failed']} of {summary['samples_total']} samples failed[/] "
            f"(Overall counts them as 0; over the {ran} that ran: {summary['overall_successful']:.2f}). Reasons:"
        )
        for reason, n in list(summary["failures"].items())[:5]:
            err.print(f"  {n} x {escape(reason)}", highlight=False)
        err.print(
            "Fix the cause and re-run into the same --output (a corrected --videos is allowed): failed samples "
            "are retried, finished ones kept."
        )
    if summary["diagnostics"]["judge_failures"]:
        err.print(
            f"[bold red]{summary['diagnostics']['judge_failures']} judge failures[/] (not scored; see summary.json "
            "judge_failure_reasons); re-score later with 'evostreaming eval report'"
        )
    console.print(f"summary: {output / 'summary.json'}  report: {output / 'report.md'}")


@app.command("score-ovo")
def eval_score_ovo(
    annotations: Path = typer.Option(..., help="OVO-Bench annotation file (ovo_bench_new.json)"),
    predictions: Path = typer.Option(..., help="folder of prediction *.json files in OVO-Bench's format"),
    json_out: Path | None = typer.Option(None, "--json", help="write the scores here"),
    allow_missing: bool = typer.Option(
        False, help="score even when whole tasks have no predictions (the headline then names them)"
    ),
) -> None:
    """Score predictions with OVO-Bench's original offline rules (for comparability)."""

    from rich.table import Table

    from evostreaming.eval.benchmarks import BENCHMARKS

    try:  # OVO-Bench's registry entry carries its original scorer
        result = BENCHMARKS.get("ovo").offline(annotations, predictions, allow_missing)
    except ValueError as exc:
        fail(str(exc))
    missing = result["missing_tasks"]
    table = Table(title=f"OVO-Bench (original protocol): {predictions}")
    table.add_column("task / category")
    table.add_column("score", justify="right")
    table.add_column("items", justify="right")
    for task, score in result["tasks"].items():
        table.add_row(task, f"{score:.2f}", str(result["counts"][task]))
    for cat, score in result["categories"].items():
        table.add_row(f"[bold]{cat}[/]", f"[bold]{score:.2f}[/]", "")
    label = f"overall (partial: no {', '.join(missing)})" if missing else "overall"
    table.add_row(f"[bold]{label}[/]", f"[bold]{result['overall']:.2f}[/]", "")
    console.print(table)
    if json_out:
        from evostreaming.utils.jobs import ensure_writable, write_json

        ensure_writable(json_out.parent, "--json folder")
        write_json(json_out, result)
