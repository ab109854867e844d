"""``evostreaming evolve``: EvoStreaming rounds (self-generated data, LoRA) and a trajectory viewer."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer

from evostreaming.cli.common import App, AttnOpt, DeviceOpt, ModelOpt, OverwriteOpt, config_options, console, err, fail
from evostreaming.train.config import LoraTrainConfig

app = App(help="EvoStreaming: self-evolution of the interaction policy.", no_args_is_help=True)


def _pool(videos: Path | None, world_seed: int | None, n_videos: int):
    from evostreaming.evolve.pool import folder_pool, world_pool

    if (videos is None) == (world_seed is None):
        fail("give exactly one of --videos DIR or --world-seed S")
    if world_seed is not None and n_videos < 1:
        fail(f"--n-videos is the number of ShapesWorld videos in the pool, >= 1; got {n_videos}")
    if videos is not None:
        try:
            return folder_pool(videos)
        except FileNotFoundError as exc:
            fail(str(exc))
    return world_pool(world_seed, n_videos)


@app.command("run")
@config_options(LoraTrainConfig, into="lora")
def evolve_run(
    model: ModelOpt,
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
    generation_batch_size: int = typer.Option(16, help="prompts per batch on the local model (stages 1-4)"),
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
    prompts: str | None = typer.Option(
        None, help="stage prompts: a YAML file, 'real' (for real checkpoints) or 'pocket' (the default)"
    ),
    device: DeviceOpt = "auto",
    dtype: str = typer.Option(
        "float32",
        help="precision of the local model in stages 1-4 (float32, bfloat16, float16, auto); bfloat16 halves a "
        "GPU's memory and is another job (the stage outputs change)",
    ),
    attn: AttnOpt = "auto",
    overwrite: OverwriteOpt = False,
    lora: LoraTrainConfig = None,
) -> None:
    """Run EvoStreaming rounds end to end (taxonomy, questions, relevance, roll-out, standardize, LoRA)."""
    from rich.progress import Progress

    from evostreaming.evolve.backends import BackendError
    from evostreaming.evolve.pipeline import EvolveConfig, evolve_identity, run_evolution
    from evostreaming.utils.distributed import on_rank_zero, ranks, shut_down
    from evostreaming.utils.jobs import job

    pool = _pool(videos, world_seed, n_videos)
    try:
        cfg = EvolveConfig(
            n_samples=n_samples,
            rounds=rounds,
            questions_per_video=questions_per_video,
            seed=seed,
            random_relevance=random_relevance,
            lora=lora,
            server_url=server,
            server_model=server_model,
            server_concurrency=concurrency,
            batch_size=generation_batch_size,
            ask_at_start_types=tuple(ask_at_start),
            replay=replay,
            replay_annotations=replay_annotations,
            prompts_path=prompts,
            device=device,
            dtype=dtype,
            attn=attn,
        )
    except ValueError as exc:
        fail(str(exc))
    r = ranks()  # under accelerate launch / torchrun: the stages are shared out between processes
    identity = evolve_identity(model, pool, cfg)
    with ExitStack() as holder:
        try:
            # rank 0 holds the folder (lock, job identity); its refusal stops every rank
            on_rank_zero(r, lambda: holder.enter_context(job(output, "evolve run", identity, overwrite=overwrite)))
            bar = holder.enter_context(Progress(console=err, disable=not r.main))
            tasks: dict[str, int] = {}

            def report(stage, done, total):
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            adapters = run_evolution(model, pool, output, cfg, err, report, r)
        except BackendError as exc:
            fail(f"{exc}. Finished items are kept in {output}; re-run the same command to resume.")
        finally:
            shut_down(r)
    if r.main:
        for i, a in enumerate(adapters, start=1):
            console.print(f"round {i}: adapter {a}")


@app.command("show")
def evolve_show(
    path: Path = typer.Argument(..., help="a round folder (rollouts.jsonl) or a rollouts/train JSONL file"),
    index: int = typer.Option(0, help="which trajectory"),
) -> None:
    """Print one trajectory as a readable timeline."""
    from rich.markup import escape
    from rich.table import Table

    from evostreaming.utils.jsonl import JsonlError, read_jsonl

    file = path / "rollouts.jsonl" if path.is_dir() else path
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        rows = read_jsonl(file)
    except JsonlError as exc:
        fail(str(exc))
    if not rows:
        fail(f"{file}: holds no trajectories (an evolve round's rollouts.jsonl or train.jsonl has them)")
    if not 0 <= index < len(rows):
        fail(f"{file}: has {len(rows)} trajectories; --index must be in [0, {len(rows) - 1}]")
    row = rows[index]
    try:
        if row.get("layout") == "offline":
            turn = row["turns"][0]
            console.print(
                f"{row['video']}: offline replay ({row.get('source', 'answer')}), frames {row['frames']}", markup=False
            )
            console.print(f"  user: {turn['user_text']}\n  assistant: {turn['reply']}", markup=False)
            return
        steps = row.get("steps") or [{"step": k, **t} for k, t in enumerate(row["turns"])]
        fps = row.get("fps", 0.5)
        table = Table(title=escape(f"{row['video']}  ({row.get('question', '')})"))
        table.add_column("time", justify="right")
        table.add_column("user")
        table.add_column("assistant")
        for st in steps:  # the model's and the user's words as written, never as rich markup
            table.add_row(f"{st['step'] / fps:.0f}s", escape(st.get("user_text") or ""), escape(st["reply"]))
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        fail(
            f"{file}: trajectory {index} is not a trajectory row ({type(exc).__name__}: {exc}); evolve show reads "
            "an evolve round's rollouts.jsonl or train.jsonl"
        )
    console.print(table)
