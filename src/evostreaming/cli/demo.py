"""``evostreaming demo``: the main job on the embedded pocket model (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import console, fail


def demo(
    quick: bool = typer.Option(False, help="a shorter run for a first look"),
    output: Path = typer.Option(Path("runs/demo"), help="where to write the demo's files"),
    replay: float | None = typer.Option(
        None, help="self-replay of the model's own offline answers, x trajectories (default 1.0; docs/evostreaming.md)"
    ),
    replay_annotations: float = typer.Option(
        0.0, help="also replay the model's own task types, questions and relevance labels (see docs/evostreaming.md)"
    ),
    prompts: str | None = typer.Option(None, help="stage prompts: a YAML file or 'pocket' (the default)"),
) -> None:
    """The main job on the embedded default model."""
    from evostreaming.evolve.main_job import run_demo

    try:
        run_demo(
            output, quick=quick, console=console, replay=replay, replay_annotations=replay_annotations, prompts=prompts
        )
    except ValueError as exc:  # bad settings, or an output folder holding another run: before any work
        fail(str(exc))
