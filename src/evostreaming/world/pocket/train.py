"""Train the pocket model from scratch on ShapesWorld's offline supervision (CPU-friendly).

Resumable: a checkpoint (weights, optimizer, scheduler, step) is written every
``checkpoint_every`` steps to ``OUTPUT/checkpoint``; re-running the same command continues from
it, with the same data the uninterrupted run would have seen (batches are a function of the
seed and the step). The final model is saved to ``OUTPUT/final`` (safetensors + processor).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from evostreaming.train.checkpoint import load_training_state, save_checkpoint
from evostreaming.utils.jobs import write_json
from evostreaming.utils.progress import job_progress
from evostreaming.world.pocket.build import build_pocket
from evostreaming.world.pocket.data import IGNORE, PERCEPTION_OPENERS, batch_examples, collate, encode_example
from evostreaming.world.pocket.vision import pretrain_vision
from evostreaming.world.supervision import WEIGHTS


@dataclass
class PocketTrainConfig:
    seed: int = 0
    steps: int = 6000
    batch_size: int = 16
    micro_batch: int = 4  # examples per forward, grouped by length: less padding, same gradient
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    n_scenes: int = 20_000  # training scenes are seeds [0, n_scenes); benchmarks use other seeds
    perception_steps: int = 1000  # grounding curriculum: single-frame perception questions first
    # openers of the perception conversations (data.PERCEPTION_OPENERS); v3 used the inventory only
    perception_openers: tuple[str, ...] = PERCEPTION_OPENERS
    # weights of the example kinds after the perception stage; supervision.WEIGHTS_V6 gives v6
    mixture: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))
    vision_steps: int = 150  # stage 0: supervised vision pretraining (vision.py); 0 skips it
    freeze_vision: bool = True  # keep the pretrained tower fixed; its mergers (the projector) still train
    frames_per_turn: float = 0.0  # fraction of multi-frame examples shown one frame per user message
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self) -> None:
        """Settings that cannot work raise ValueError, with the fix, before any work."""
        if bad := sorted(set(self.perception_openers) - set(PERCEPTION_OPENERS)):
            raise ValueError(f"--perception-opener {', '.join(bad)}: use kind_list, inventory or direct")
        for kind, weight in self.mixture.items():
            if not _weight_ok(kind, weight):
                raise ValueError(_mix_error(f"{kind}={weight}"))
        if not any(self.mixture.values()):
            raise ValueError("--mix: every weight is 0; keep at least one kind")
        if not 0.0 <= self.frames_per_turn <= 1.0:
            raise ValueError(f"--frames-per-turn is a fraction of examples, in [0, 1]; got {self.frames_per_turn}")
        if self.vision_steps < 0:
            raise ValueError(f"--vision-steps must be 0 (skip stage 0) or more; got {self.vision_steps}")
        for flag, value, least in (
            ("--steps", self.steps, 1),
            ("--batch-size", self.batch_size, 1),
            ("micro_batch", self.micro_batch, 1),
            ("--perception-steps", self.perception_steps, 0),
            ("warmup", self.warmup, 0),
            ("n_scenes", self.n_scenes, 1),
            ("checkpoint_every", self.checkpoint_every, 1),
            ("log_every", self.log_every, 1),
        ):
            if value < least:
                raise ValueError(f"{flag} must be >= {least}; got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0; got {self.lr}")


def _weight_ok(kind: str, weight: float) -> bool:
    return kind in WEIGHTS and math.isfinite(weight) and weight >= 0


def _mix_error(item: str) -> str:
    return f"--mix {item!r}: use KIND=WEIGHT with a weight >= 0 and KIND one of {', '.join(WEIGHTS)}"


def parse_mix(items: list[str]) -> dict[str, float]:
    """The training mixture: ``supervision.WEIGHTS`` with each ``KIND=WEIGHT`` item applied (0 drops a kind)."""
    mixture = dict(WEIGHTS)
    for item in items:
        kind, _, weight = item.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not _weight_ok(kind, value):
            raise ValueError(_mix_error(item))
        mixture[kind] = value
    return mixture


def _schedule(cfg: PocketTrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _n_targets(labels: torch.Tensor) -> int:
    return int((labels[..., 1:] != IGNORE).sum())


def train_pocket(
    output: Path,
    cfg: PocketTrainConfig | None = None,
    console: Console | None = None,
    max_steps_this_run: int | None = None,
) -> Path:
    from accelerate import Accelerator

    cfg = cfg or PocketTrainConfig()
    console = console or Console(stderr=True)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    ckpt = output / "checkpoint"
    torch.manual_seed(cfg.seed)
    tm = build_pocket(cfg.seed)
    model, processor = tm.model, tm.processor
    start = 0
    if (ckpt / "config.json").exists():
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.float32)
    elif cfg.vision_steps:
        # a crash before the first checkpoint redoes this stage identically (seeded, ~15 s)
        console.print(f"stage 0: pretraining the vision tower ({cfg.vision_steps} steps)")
        losses = pretrain_vision(model, processor, cfg.vision_steps, seed=cfg.seed, n_scenes=cfg.n_scenes)
        console.print(f"stage 0 done: loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    if cfg.freeze_vision:
        for name, p in model.model.visual.named_parameters():
            p.requires_grad = "merger" in name
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2]
    no_decay = [p for n, p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    if (ckpt / "trainer_state.json").exists():
        state = load_training_state(ckpt, optimizer, scheduler)
        start = state["step"]
        console.print(f"resuming pocket training from step {start} ({ckpt})")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    log_path = output / "train_log.jsonl"
    write_json(output / "train_config.json", asdict(cfg))
    end = cfg.steps if max_steps_this_run is None else min(cfg.steps, start + max_steps_this_run)
    pad_id = processor.tokenizer.pad_token_id
    running = None
    with job_progress(console, "pocket") as progress, open(log_path, "a") as log:
        task = progress.add_task("train", total=cfg.steps, completed=start, status="")
        for step in range(start, end):
            t0 = time.perf_counter()
            examples = batch_examples(
                cfg.seed,
                step,
                cfg.batch_size,
                cfg.n_scenes,
                cfg.perception_steps,
                cfg.frames_per_turn,
                openers=cfg.perception_openers,
                mixture=cfg.mixture,
            )
            items = sorted((encode_example(processor, ex) for ex in examples), key=lambda x: x["input_ids"].shape[0])
            n_total = sum(_n_targets(x["labels"]) for x in items)
            loss = 0.0
            for i in range(0, len(items), cfg.micro_batch):
                chunk = collate(items[i : i + cfg.micro_batch], pad_id)
                batch = {k: v.to(accelerator.device) for k, v in chunk.items()}
                # the model's loss is a mean over this micro-batch's targets; reweight to the batch mean
                part = model(**batch).loss * (_n_targets(batch["labels"]) / n_total)
                accelerator.backward(part)
                loss += part.detach()
            accelerator.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            progress.update(task, advance=1, status=f"loss {running:.3f}")
            if (step + 1) % cfg.log_every == 0:
                log.write(
                    json.dumps(
                        {
                            "step": step + 1,
                            "loss": loss.item(),
                            "ema_loss": running,
                            "lr": scheduler.get_last_lr()[0],
                            "step_s": time.perf_counter() - t0,
                        }
                    )
                    + "\n"
                )
                log.flush()
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
                save_checkpoint(ckpt, accelerator.unwrap_model(model), processor, optimizer, scheduler, step + 1)
    final = output / "final"
    if end == cfg.steps:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.eval()
        save_checkpoint(final, unwrapped, processor, None, None, cfg.steps, {"config": asdict(cfg)})
        for extra in ("optimizer.safetensors", "optimizer.json"):
            (final / extra).unlink(missing_ok=True)
    return final
