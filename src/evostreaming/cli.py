"""The ``evostreaming`` command line (one typer app)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="EvoStreaming: offline VideoLLMs as streaming assistants, and RealStreamEval to measure them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Performance benchmarks (write JSON + PNG).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


eval_app = typer.Typer(help="RealStreamEval and OVO-Bench scoring.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.callback()
def _eval() -> None:
    """RealStreamEval and OVO-Bench scoring."""


def _load_samples(benchmark: str, data: Path, videos: Path | None, fps: float | None, limit: int | None):
    from evostreaming.eval.datasets.ovo import OVOMapping, load_ovo
    from evostreaming.eval.schema import SampleFormatError, load_samples

    try:
        if benchmark == "ovo":
            samples = load_ovo(data, videos, OVOMapping(fps=fps or 0.5))
        elif benchmark == "jsonl":
            samples = load_samples(data)
            base = data if data.is_dir() else data.parent
            root = videos or base
            for s in samples:
                if "://" not in s.video and not Path(s.video).is_absolute():
                    s.video = str(root / s.video)
                if fps:
                    s.fps = fps
        else:
            _fail(f"unknown --benchmark {benchmark!r}: use ovo or jsonl")
    except SampleFormatError as exc:
        _fail(str(exc))
    return samples[:limit] if limit else samples


@eval_app.command("run")
def eval_run(
    data: Path = typer.Option(..., help="benchmark file (OVO json or RealStreamEval JSONL) or folder"),
    output: Path = typer.Option(..., help="output folder (re-running resumes)"),
    benchmark: str = typer.Option("jsonl", help="ovo | jsonl"),
    videos: Path | None = typer.Option(None, help="folder the samples' video paths are relative to"),
    model: str | None = typer.Option(None, help="model spec (tiny:<family>, pocket, hub id, folder)"),
    baseline: str | None = typer.Option(None, help="always-silent | always-respond | oracle"),
    adapter: Path | None = typer.Option(None, help="PEFT LoRA adapter for --model"),
    judge: str = typer.Option("rule", help="rule | embedding | openai:URL,model=NAME"),
    fps: float | None = typer.Option(None, help="override the samples' frame rate (default 0.5)"),
    limit: int | None = typer.Option(None, help="only the first N samples"),
    silence_threshold: float | None = typer.Option(None, help="responsiveness knob (see stream --help)"),
    memory_window: float = typer.Option(0.0, help="bounded memory, seconds of frames (0 = unbounded)"),
    max_new_tokens: int = typer.Option(48, help="longest response"),
    max_pixels: int = typer.Option(448 * 448, help="frame pixel budget"),
    timelines: int = typer.Option(50, help="timeline PNGs to draw (-1 = all)"),
) -> None:
    """Run RealStreamEval: the model decides causally when to speak; then score and report."""
    import math

    from evostreaming.eval.judges import make_judge
    from evostreaming.eval.policies import SessionPolicy, make_baseline
    from evostreaming.eval.protocol import run_protocol
    from evostreaming.eval.report import write_report

    if (model is None) == (baseline is None):
        _fail("give exactly one of --model or --baseline")
    samples = _load_samples(benchmark, data, videos, fps, limit)
    try:
        scorer = make_judge(judge, cache_dir=output / "judge-cache")
    except ValueError as exc:
        _fail(str(exc))
    if baseline:
        try:
            policy = make_baseline(baseline)
        except ValueError as exc:
            _fail(str(exc))
    else:
        from evostreaming.models.loading import ModelLoadError, load_model
        from evostreaming.stream.memory import MemoryPolicy
        from evostreaming.stream.session import SessionConfig

        try:
            loaded = load_model(model, adapter_dir=str(adapter) if adapter else None)
        except (ModelLoadError, ValueError) as exc:
            _fail(str(exc))

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


@eval_app.command("report")
def eval_report(
    output: Path = typer.Argument(..., help="a folder written by 'eval run'"),
    judge: str = typer.Option("rule", help="rule | embedding | openai:URL,model=NAME"),
    timelines: int = typer.Option(50, help="timeline PNGs to draw (-1 = all)"),
) -> None:
    """Re-score saved trajectories (no model needed) and rewrite summary.json, report.md, timelines."""
    from evostreaming.eval.judges import make_judge
    from evostreaming.eval.report import write_report

    try:
        summary = write_report(output, make_judge(judge, cache_dir=output / "judge-cache"), timelines=timelines)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
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


@eval_app.command("score-ovo")
def eval_score_ovo(
    annotations: Path = typer.Option(..., help="OVO-Bench annotation file (ovo_bench_new.json)"),
    predictions: Path = typer.Option(..., help="folder of prediction *.json files in OVO-Bench's format"),
    json_out: Path | None = typer.Option(None, "--json", help="write the scores here"),
) -> None:
    """Score predictions with OVO-Bench's original offline rules (for comparability)."""
    import json

    from rich.table import Table

    from evostreaming.eval.ovo_score import (
        OVOPredictionError,
        check_against_annotations,
        load_predictions,
        score_predictions,
    )

    for path in (annotations, predictions):
        if not path.exists():
            _fail(f"{path}: no such file or folder")
    try:
        preds = load_predictions(predictions)
        coverage = check_against_annotations(preds, annotations)
        result = score_predictions(preds)
    except OVOPredictionError as exc:
        _fail(str(exc))
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


world_app = typer.Typer(help="ShapesWorld: the procedural video world and the pocket model.", no_args_is_help=True)
app.add_typer(world_app, name="world")


@world_app.callback()
def _world() -> None:
    """ShapesWorld: the procedural video world and the pocket model."""


@world_app.command("make-bench")
def world_make_bench(
    output: Path = typer.Option(..., help="folder to write samples.jsonl, scenes.jsonl and videos/"),
    seed: int = typer.Option(1, help="benchmark seed (scene seeds are derived from it)"),
    n: int = typer.Option(50, help="number of streams (task types in turn)"),
) -> None:
    """Write a ShapesWorld streaming benchmark in the RealStreamEval native format, with mp4s."""
    from evostreaming.world.bench import make_bench

    samples = make_bench(seed, n, output)
    console.print(f"{len(samples)} streams -> {output / 'samples.jsonl'} (use: evostreaming eval run --data {output})")


@world_app.command("train-pocket")
def world_train_pocket(
    output: Path = typer.Option(..., help="training folder (checkpoint/, final/, train_log.jsonl); re-run resumes"),
    seed: int = typer.Option(0),
    steps: int = typer.Option(6000, help="optimizer steps (the released model: 6000; v6: 5000)"),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-3),
    perception_steps: int = typer.Option(1000, help="grounding curriculum: single-frame perception questions first"),
    vision_steps: int = typer.Option(150, help="stage 0: supervised vision-tower pretraining steps (0 skips)"),
    freeze_vision: bool = typer.Option(True, help="freeze the pretrained vision tower (its mergers still train)"),
    frames_per_turn: float = typer.Option(
        0.0, help="fraction of multi-frame examples shown one frame per user message (the layout of a stream)"
    ),
    perception_opener: list[str] = typer.Option(
        [],
        help="how perception conversations open, drawn uniformly from the given list (repeatable): kind_list, "
        "inventory or direct; default: kind_list twice, inventory, direct (v6); 'inventory' alone gives v3",
    ),
    mix: list[str] = typer.Option(
        [],
        help="KIND=WEIGHT: change one kind's weight in the training mixture after the perception stage "
        "(repeatable; 0 drops it); v6: --mix history=0 --mix caption=0.1 --mix relevance=0.2",
    ),
) -> None:
    """Train the pocket VideoLLM from scratch on ShapesWorld's offline supervision (CPU, resumable)."""
    from evostreaming.world.pocket.data import PERCEPTION_OPENERS
    from evostreaming.world.pocket.train import PocketTrainConfig, train_pocket
    from evostreaming.world.supervision import WEIGHTS

    if bad := sorted(set(perception_opener) - set(PERCEPTION_OPENERS)):
        _fail(f"--perception-opener {', '.join(bad)}: use kind_list, inventory or direct")
    mixture = dict(WEIGHTS)
    for item in mix:
        kind, _, weight = item.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if kind not in WEIGHTS or not math.isfinite(value) or value < 0:
            _fail(f"--mix {item!r}: use KIND=WEIGHT with a weight >= 0 and KIND one of {', '.join(WEIGHTS)}")
        mixture[kind] = value
    if not any(mixture.values()):
        _fail("--mix: every weight is 0; keep at least one kind")

    if not 0.0 <= frames_per_turn <= 1.0:
        _fail(f"--frames-per-turn is a fraction of examples, between 0 and 1; got {frames_per_turn}")
    if vision_steps < 0:
        _fail(f"--vision-steps must be 0 (skip stage 0) or more; got {vision_steps}")
    cfg = PocketTrainConfig(
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        perception_steps=perception_steps,
        vision_steps=vision_steps,
        freeze_vision=freeze_vision,
        frames_per_turn=frames_per_turn,
        perception_openers=tuple(perception_opener) or PERCEPTION_OPENERS,
        mixture=mixture,
    )
    final = train_pocket(output, cfg, err)
    console.print(f"pocket model: {final}")


@world_app.command("eval-pocket")
def world_eval_pocket(
    model: str = typer.Option("pocket", help="pocket, or pocket:DIR for a trained folder"),
    n_per_kind: int = typer.Option(100, help="held-out examples per kind (qa, relevance, question, ...)"),
    json_out: Path = typer.Option(Path("runs/pocket/offline_metrics.json"), "--json"),
) -> None:
    """Held-out offline metrics: QA, relevance, question generation, task-type classification."""
    from evostreaming.models.loading import ModelLoadError, load_model
    from evostreaming.world.pocket.evaluate import offline_metrics

    try:
        loaded = load_model(model)
    except ModelLoadError as exc:
        _fail(str(exc))
    result = offline_metrics(loaded.model, loaded.processor, n_per_kind, out=json_out)
    console.print_json(data={k: v for k, v in result.items() if k != "failures"})


evolve_app = typer.Typer(help="EvoStreaming: self-evolution of the interaction policy.", no_args_is_help=True)
app.add_typer(evolve_app, name="evolve")
train_app = typer.Typer(help="Training: LoRA SFT on streaming conversations.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@evolve_app.callback()
def _evolve() -> None:
    """EvoStreaming: self-evolution of the interaction policy."""


@train_app.callback()
def _train() -> None:
    """Training: LoRA SFT on streaming conversations."""


def _pool(videos: Path | None, world_seed: int | None, n_videos: int):
    from evostreaming.evolve.pool import folder_pool, world_pool

    if (videos is None) == (world_seed is None):
        _fail("give exactly one of --videos DIR or --world-seed S")
    if videos is not None:
        try:
            return folder_pool(videos)
        except FileNotFoundError as exc:
            _fail(str(exc))
    return world_pool(world_seed, n_videos)


def _lora_config(rank, alpha, lr, batch_size, epochs, silent_keep, marker_rows=True):
    from evostreaming.train.lora import LoraTrainConfig

    if not 0.0 < silent_keep <= 1.0:
        _fail(f"--silent-keep must be in (0, 1], got {silent_keep}")
    return LoraTrainConfig(
        rank=rank,
        alpha=alpha,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        silent_keep=silent_keep,
        train_marker_rows=marker_rows,
    )


SILENT_KEEP_HELP = "fraction of silent steps that carry loss (1 = every assistant turn, the paper's recipe)"
MARKER_ROWS_HELP = "also train the embedding/output rows of a one-token silence marker (PEFT trainable tokens)"


@evolve_app.command("run")
def evolve_run(
    model: str = typer.Option(..., help="base model spec (pocket, tiny:<family>, hub id, folder)"),
    output: Path = typer.Option(..., help="output folder; round-<i>/adapter/ per round; re-run resumes"),
    videos: Path | None = typer.Option(None, help="a folder of videos as the pool"),
    world_seed: int | None = typer.Option(None, help="use ShapesWorld scenes as the pool"),
    n_videos: int = typer.Option(1200, help="pool size for --world-seed"),
    n_samples: int = typer.Option(1000, help="trajectories per round"),
    rounds: int = typer.Option(1),
    questions_per_video: int = typer.Option(2),
    random_relevance: bool = typer.Option(False, help="ablation: random relevance labels at the same rate"),
    server: str | None = typer.Option(
        None, help="generate on an OpenAI-compatible server (vLLM/SGLang), e.g. http://localhost:8000/v1"
    ),
    server_model: str | None = typer.Option(None, help="model name on the server; {round} is the round index"),
    concurrency: int = typer.Option(16, help="concurrent requests to --server"),
    rank: int = typer.Option(8),
    alpha: int = typer.Option(32),
    lr: float = typer.Option(1e-4),
    batch_size: int = typer.Option(8),
    epochs: float = typer.Option(1.0),
    silent_keep: float = typer.Option(1.0, help=SILENT_KEEP_HELP),
    marker_rows: bool = typer.Option(True, help=MARKER_ROWS_HELP),
    ask_at_start: list[str] = typer.Option(
        [],
        help="a task type whose questions are asked at the first step (their evidence comes later); repeatable",
    ),
    replay: float = typer.Option(
        0.0, help="self-replay: add this fraction (x trajectories) of the model's own offline answers to training"
    ),
    replay_annotations: float = typer.Option(
        0.0, help="self-replay of the model's own task types, questions and relevance labels (x trajectories)"
    ),
    seed: int = typer.Option(0),
) -> None:
    """Run EvoStreaming rounds end to end (taxonomy, questions, relevance, roll-out, standardize, LoRA)."""
    from rich.progress import Progress

    from evostreaming.evolve.backends import BackendError
    from evostreaming.evolve.pipeline import EvolveConfig, run_evolution

    pool = _pool(videos, world_seed, n_videos)
    cfg = EvolveConfig(
        n_samples=n_samples,
        rounds=rounds,
        questions_per_video=questions_per_video,
        seed=seed,
        random_relevance=random_relevance,
        lora=_lora_config(rank, alpha, lr, batch_size, epochs, silent_keep, marker_rows),
        server_url=server,
        server_model=server_model,
        server_concurrency=concurrency,
        ask_at_start_types=tuple(ask_at_start),
        replay=replay,
        replay_annotations=replay_annotations,
    )
    try:
        cfg.check()
    except ValueError as exc:
        _fail(str(exc))
    with Progress(console=err) as progress:
        tasks: dict[str, int] = {}

        def report(stage, done, total):
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            adapters = run_evolution(model, pool, output, cfg, err, report)
        except BackendError as exc:
            _fail(f"{exc}. Finished items are kept in {output}; re-run the same command to resume.")
    for i, a in enumerate(adapters, start=1):
        console.print(f"round {i}: adapter {a}")


@evolve_app.command("show")
def evolve_show(
    path: Path = typer.Argument(..., help="a round folder (rollouts.jsonl) or a rollouts/train JSONL file"),
    index: int = typer.Option(0, help="which trajectory"),
) -> None:
    """Print one trajectory as a readable timeline."""
    import json

    from rich.table import Table

    file = path / "rollouts.jsonl" if path.is_dir() else path
    if not file.exists():
        _fail(f"{file}: no such file")
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    if not 0 <= index < len(rows):
        _fail(f"{file}: has {len(rows)} trajectories; --index must be in [0, {len(rows) - 1}]")
    row = rows[index]
    if row.get("layout") == "offline":
        turn = row["turns"][0]
        console.print(f"{row['video']}: offline replay ({row.get('source', 'answer')}), frames {row['frames']}")
        console.print(f"  user: {turn['user_text']}\n  assistant: {turn['reply']}")
        return
    steps = row.get("steps") or [{"step": k, **t} for k, t in enumerate(row["turns"])]
    fps = row.get("fps", 0.5)
    table = Table(title=f"{row['video']}  ({row.get('question', '')})")
    table.add_column("time", justify="right")
    table.add_column("user")
    table.add_column("assistant")
    for s in steps:
        table.add_row(f"{s['step'] / fps:.0f}s", s.get("user_text") or "", s["reply"])
    console.print(table)


@train_app.command("lora")
def train_lora_cmd(
    model: str = typer.Option(..., help="base model spec"),
    data: Path = typer.Option(..., help="training conversations (JSONL, e.g. round-1/train.jsonl)"),
    output: Path = typer.Option(..., help="output folder (adapter/ + checkpoint/); re-run resumes"),
    rank: int = typer.Option(8),
    alpha: int = typer.Option(32),
    lr: float = typer.Option(1e-4),
    batch_size: int = typer.Option(8),
    epochs: float = typer.Option(1.0),
    silent_keep: float = typer.Option(1.0, help=SILENT_KEEP_HELP),
    marker_rows: bool = typer.Option(True, help=MARKER_ROWS_HELP),
) -> None:
    """LoRA SFT (PEFT) on any trajectory file; loss on assistant turns only."""
    from evostreaming.evolve.pool import load_frames
    from evostreaming.train.lora import TrainDataError, train_lora

    if not data.exists():
        _fail(f"{data}: no such file")
    try:
        cfg = _lora_config(rank, alpha, lr, batch_size, epochs, silent_keep, marker_rows)
        adapter = train_lora(model, data, output, cfg, err, load_frames=load_frames)
    except TrainDataError as exc:
        _fail(str(exc))
    console.print(f"adapter: {adapter}")


@bench_app.callback()
def _bench() -> None:
    """Performance benchmarks (write JSON + PNG)."""


console = Console()
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def stream(
    model: str = typer.Argument(..., help="tiny:<family>, pocket, a hub id or a local model folder"),
    source: str = typer.Argument(..., help="video file, image folder, camera index, or rtsp/http URL"),
    fps: float = typer.Option(0.5, help="frames per second fed to the model"),
    query: list[str] = typer.Option([], "--query", help="user text; repeat for several turns"),
    query_at: list[float] = typer.Option([], "--query-at", help="stream time (s) of each --query; default 0"),
    memory_window: float = typer.Option(
        0.0, help="keep only the last SECONDS of frames in the KV cache (0 = unbounded)"
    ),
    max_text_turns: int = typer.Option(64, help="bounded mode: text turns kept after their frames are evicted"),
    jsonl: Path | None = typer.Option(None, help="write every step (time, action, text, latency) here"),
    silence_marker: str = typer.Option("<silent>", help="the assistant's 'nothing to say' reply"),
    silence_threshold: float | None = typer.Option(
        None, help="silent iff P(marker) >= this (higher = more talkative); default: greedy decision"
    ),
    system_prompt: str | None = typer.Option(None, help="override the system prompt ({marker} is substituted)"),
    max_new_tokens: int = typer.Option(64, help="longest response, in tokens"),
    max_pixels: int = typer.Option(448 * 448, help="resize frames to at most this many pixels"),
    max_steps: int | None = typer.Option(None, help="stop after this many frames (for endless sources)"),
    adapter: Path | None = typer.Option(None, help="a PEFT LoRA adapter folder to apply"),
    dtype: str = typer.Option("auto", help="model dtype: auto, float32, bfloat16, float16"),
) -> None:
    """Watch SOURCE with MODEL; print each response with its stream time as it happens."""
    from evostreaming.models.loading import ModelLoadError, load_model
    from evostreaming.stream.memory import MemoryPolicy
    from evostreaming.stream.runner import UserTurn, run_stream
    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT, SessionConfig, StreamingSession
    from evostreaming.video.sources import VideoSourceError, open_source

    if query_at and len(query_at) != len(query):
        _fail(f"got {len(query)} --query but {len(query_at)} --query-at; give one time per query or none")
    times = list(query_at) if query_at else [0.0] * len(query)
    turns = [UserTurn(t, q) for t, q in zip(times, query, strict=True)]
    try:
        frames = open_source(source, fps=fps, max_pixels=max_pixels)
    except VideoSourceError as exc:
        _fail(str(exc))
    try:
        loaded = load_model(model, dtype=dtype, adapter_dir=str(adapter) if adapter else None)
    except (ModelLoadError, ValueError) as exc:
        _fail(str(exc))
    window = math.ceil(memory_window * fps) if memory_window > 0 else None
    config = SessionConfig(
        system_prompt=system_prompt or DEFAULT_SYSTEM_PROMPT,
        silence_marker=silence_marker,
        silence_threshold=silence_threshold,
        max_new_tokens=max_new_tokens,
        memory=MemoryPolicy(window_frames=window, max_text_turns=max_text_turns),
    )
    session = StreamingSession(loaded.model, loaded.processor, loaded.adapter, config)
    from evostreaming.stream.display import StreamDisplay

    with StreamDisplay(console, title=f"{model} on {source}") as display:
        try:
            results = run_stream(session, frames, turns, on_step=display.update, jsonl=jsonl, max_steps=max_steps)
        except VideoSourceError as exc:
            _fail(str(exc))
    n_resp = sum(r.action == "respond" for r in results)
    err.print(f"{len(results)} steps, {n_resp} responses" + (f"; steps written to {jsonl}" if jsonl else ""))


@bench_app.command("streaming")
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


@app.command()
def demo(
    quick: bool = typer.Option(False, help="a shorter run for a first look"),
    output: Path = typer.Option(Path("runs/demo"), help="where to write the demo's files"),
    replay: float | None = typer.Option(
        None, help="self-replay of the model's own offline answers, x trajectories (default 1.0; docs/evostreaming.md)"
    ),
    replay_annotations: float = typer.Option(
        0.0, help="also replay the model's own task types, questions and relevance labels (see docs/evostreaming.md)"
    ),
) -> None:
    """The main job on the embedded default model."""
    from evostreaming.demo import run_demo

    try:
        run_demo(output, quick=quick, console=console, replay=replay, replay_annotations=replay_annotations)
    except ValueError as exc:  # bad settings, or an output folder holding another run: before any work
        _fail(str(exc))


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
