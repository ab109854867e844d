"""``evostreaming world``: ShapesWorld benchmarks and the pocket model's training and offline metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import App, OverwriteOpt, console, err, fail

app = App(help="ShapesWorld: the procedural video world and the pocket model.", no_args_is_help=True)


@app.command("make-bench")
def world_make_bench(
    output: Path = typer.Option(..., help="folder to write samples.jsonl, scenes.jsonl and videos/"),
    seed: int = typer.Option(1, help="benchmark seed (scene seeds are derived from it)"),
    n: int = typer.Option(50, min=1, max=10_000, help="number of streams (task types in turn)"),
) -> None:
    """Write a ShapesWorld streaming benchmark in the RealStreamEval native format, with mp4s."""
    from evostreaming.utils.jobs import ensure_writable
    from evostreaming.world.bench import make_bench

    ensure_writable(output)  # a file in the way, or no permission: named before any video is drawn
    samples = make_bench(seed, n, output)
    console.print(f"{len(samples)} streams -> {output / 'samples.jsonl'} (use: evostreaming eval run --data {output})")


@app.command("train-pocket")
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
    overwrite: OverwriteOpt = False,
) -> None:
    """Train the pocket VideoLLM from scratch on ShapesWorld's offline supervision (CPU, resumable)."""
    from evostreaming.world.pocket.data import PERCEPTION_OPENERS
    from evostreaming.world.pocket.train import PocketTrainConfig, parse_mix, train_pocket

    try:
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
            mixture=parse_mix(mix),
        )
    except ValueError as exc:
        fail(str(exc))
    from dataclasses import asdict

    from evostreaming.utils.jobs import job

    with job(output, "world train-pocket", asdict(cfg), overwrite=overwrite):
        final = train_pocket(output, cfg, err)
    console.print(f"pocket model: {final}")


@app.command("eval-pocket")
def world_eval_pocket(
    model: str = typer.Option("pocket", help="pocket, or pocket:DIR for a trained folder"),
    n_per_kind: int = typer.Option(100, help="held-out examples per kind (qa, relevance, question, ...)"),
    json_out: Path = typer.Option(Path("runs/pocket/offline_metrics.json"), "--json"),
) -> None:
    """Held-out offline metrics: QA, relevance, question generation, task-type classification."""
    from evostreaming.models import ModelLoadError, load_model
    from evostreaming.utils.jobs import ensure_writable
    from evostreaming.world.pocket.evaluate import offline_metrics

    if n_per_kind < 1:
        fail(f"--n-per-kind must be >= 1, got {n_per_kind}")
    ensure_writable(json_out.parent, "--json folder")  # before the metrics are computed, not after
    try:
        loaded = load_model(model)
    except ModelLoadError as exc:
        fail(str(exc))
    result = offline_metrics(loaded.model, loaded.processor, n_per_kind, out=json_out)
    console.print_json(data={k: v for k, v in result.items() if k != "failures"})
