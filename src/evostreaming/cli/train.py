"""``evostreaming train``: LoRA SFT on any trajectory file."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import App, ModelOpt, OverwriteOpt, config_options, console, err, fail
from evostreaming.train.config import LoraTrainConfig

app = App(help="Training: LoRA SFT on streaming conversations.", no_args_is_help=True)


@app.command("lora")
@config_options(LoraTrainConfig, into="lora")
def train_lora_cmd(
    model: ModelOpt,
    data: Path = typer.Option(..., help="training conversations (JSONL, e.g. round-1/train.jsonl)"),
    output: Path = typer.Option(..., help="output folder (adapter/ + checkpoint/); re-running the same job resumes"),
    overwrite: OverwriteOpt = False,
    lora: LoraTrainConfig = None,
) -> None:
    """LoRA SFT (PEFT) on any trajectory file; loss on assistant turns only."""
    from evostreaming.evolve.pool import load_frames
    from evostreaming.train.lora import load_conversations, lora_identity, train_lora
    from evostreaming.utils.jobs import job

    if data.is_dir():
        inside = data / "train.jsonl"
        hint = f"use {inside}" if inside.is_file() else "give the JSONL file (an evolve round's train.jsonl)"
        fail(f"--data {data} is a folder; {hint}")
    if not data.is_file():
        fail(f"--data {data}: no such file")
    load_conversations(data)  # a bad row stops here, before the model loads
    with job(output, "train lora", lora_identity(model, data, lora), overwrite=overwrite):
        adapter = train_lora(model, data, output, lora, err, load_frames=load_frames)
    console.print(f"adapter: {adapter}")
