"""``evostreaming train``: LoRA SFT on any trajectory file."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import ModelOpt, config_options, console, err, fail
from evostreaming.train.config import LoraTrainConfig

app = typer.Typer(help="Training: LoRA SFT on streaming conversations.", no_args_is_help=True)


@app.command("lora")
@config_options(LoraTrainConfig, into="lora")
def train_lora_cmd(
    model: ModelOpt,
    data: Path = typer.Option(..., help="training conversations (JSONL, e.g. round-1/train.jsonl)"),
    output: Path = typer.Option(..., help="output folder (adapter/ + checkpoint/); re-run resumes"),
    lora: LoraTrainConfig = None,
) -> None:
    """LoRA SFT (PEFT) on any trajectory file; loss on assistant turns only."""
    from evostreaming.evolve.pool import load_frames
    from evostreaming.train.lora import TrainDataError, train_lora

    if not data.exists():
        fail(f"{data}: no such file")
    try:
        adapter = train_lora(model, data, output, lora, err, load_frames=load_frames)
    except TrainDataError as exc:
        fail(str(exc))
    console.print(f"adapter: {adapter}")
