"""LoRA SFT on streaming conversations (PEFT), the fine-tuning stage of EvoStreaming.

Defaults follow the paper: rank 8, alpha 32, all linear layers of the language model, vision
tower frozen, lr 1e-4, batch 8, one epoch; the loss covers assistant turns only (silence markers
and responses). Each conversation is rendered by ``render_conversation``: the same tokens the
streaming session feeds at inference. Rows with ``"layout": "offline"`` (the self-replay of
EvoStreaming, see ``stage_standardize``) are one offline exchange instead: the frames named by
``frames`` (``offline_frames``) and the question in one user message, the model's own answer as
the target. Sequences
go one at a time and their gradients are summed over the batch (no cross-family padding logic);
``accelerate launch`` spreads them over GPUs (see configs/accelerate/). Resumable: adapter +
optimizer + step every ``checkpoint_every`` optimizer steps, and the data order is a function
of the seed.
"""

from __future__ import annotations

import json
import math
import os
import random
import warnings
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
from rich.console import Console

from evostreaming.stream.conversation import Turn, render_conversation, render_offline
from evostreaming.train.checkpoint import load_training_state, save_checkpoint
from evostreaming.train.config import LoraTrainConfig
from evostreaming.utils.jobs import file_digest, write_atomic, write_json
from evostreaming.utils.jsonl import read_jsonl
from evostreaming.utils.progress import job_progress


class TrainDataError(ValueError):
    pass


# (video id, fps, max_pixels) -> the video's frames at that rate. Training rows name their video by
# id; the caller says how an id becomes frames (``evolve.pool.load_frames`` knows files and
# ShapesWorld scenes), so training depends on no video pool.
FrameLoader = Callable[[str, float, "int | None"], list]


def load_conversations(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainDataError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
        for key in ("video", "turns", "system", "marker"):
            if key not in row:
                raise TrainDataError(f"{path}:{i}: field '{key}' is missing (see docs/evostreaming.md, training file)")
        layout = row.get("layout", "stream")
        if layout not in ("stream", "offline"):
            raise TrainDataError(f"{path}:{i}: layout {layout!r} is not 'stream' or 'offline'")
        if layout == "offline" and (len(row["turns"]) != 1 or not _frames_spec_ok(row.get("frames"))):
            raise TrainDataError(
                f"{path}:{i}: an offline row needs 'frames' (a number of leading frames >= 1, a list of frame "
                'indices, or "all") and exactly one turn'
            )
        rows.append(row)
    if not rows:
        raise TrainDataError(f"{path}: no conversations")
    return rows


def _frames_spec_ok(spec) -> bool:
    if spec == "all":
        return True
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec >= 1
    return isinstance(spec, list) and bool(spec) and all(isinstance(i, int) and i >= 0 for i in spec)


def offline_frames(frames: list, spec) -> list:
    """The frames an offline row shows: the first n (an int), these indices (a list), or all."""
    if spec == "all":
        return frames
    if isinstance(spec, int):
        if len(frames) < spec:
            raise IndexError(f"{len(frames)} frames, the offline row needs {spec}")
        return frames[:spec]
    if max(spec) >= len(frames):
        raise IndexError(f"{len(frames)} frames, the offline row needs frame {max(spec)}")
    return [frames[i] for i in spec]


def trained_turns(row: dict, silent_keep: float, seed: int = 0) -> list[bool]:
    """Which turns carry loss: every response; each silent step with probability ``silent_keep``
    (a pure function of the conversation and the seed, so a resumed run sees the same labels)."""
    if silent_keep >= 1.0:
        return [True] * len(row["turns"])
    key = f"{seed}|{row['video']}|{row.get('question', '')}".encode()
    rng = random.Random(zlib.crc32(key))
    return [t["reply"] != row["marker"] or rng.random() < silent_keep for t in row["turns"]]


def encode_conversation(
    row: dict,
    adapter,
    processor,
    model,
    load_frames: FrameLoader,
    frames_cache: dict | None = None,
    max_pixels: int | None = None,
    silent_keep: float = 1.0,
    seed: int = 0,
    visual_tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """One training row's model inputs; frames at ``visual_tokens`` per frame (the session's budget)."""
    video = row["video"]
    cache = frames_cache if frames_cache is not None else {}
    if video not in cache:
        cache[video] = load_frames(video, row.get("fps", 0.5), max_pixels)
    frames = cache[video]
    if row.get("layout") == "offline":
        try:
            shown = offline_frames(frames, row["frames"])
        except IndexError as exc:
            raise TrainDataError(f"{video}: {exc}") from exc
        turn = row["turns"][0]
        enc = render_offline(adapter, processor, row["system"], shown, turn["user_text"], turn["reply"], visual_tokens)
    else:
        enc = _stream_encoding(row, frames, adapter, processor, silent_keep, seed, visual_tokens)
    inputs = adapter.offline_inputs(
        model, enc["input_ids"], {k: v for k, v in enc.items() if k not in ("input_ids", "labels")}
    )
    inputs["labels"] = enc["labels"].unsqueeze(0)
    return inputs


def _stream_encoding(
    row: dict, frames: list, adapter, processor, silent_keep: float, seed: int, visual_tokens: int | None = None
) -> dict:
    video = row["video"]
    if len(frames) < len(row["turns"]):
        raise TrainDataError(f"{video}: {len(frames)} frames for {len(row['turns'])} turns")
    keep = trained_turns(row, silent_keep, seed)
    turns = [Turn(frames[k], t.get("user_text"), t["reply"], keep[k]) for k, t in enumerate(row["turns"])]
    return render_conversation(adapter, processor, row["system"], turns, row["marker"], visual_tokens)


def marker_token_rows(model, processor, marker: str) -> dict[str, list[int]] | None:
    """PEFT ``trainable_token_indices`` for a silence marker that is one token: its rows in the input
    embedding and, if untied, in the output head. None for a multi-token marker (its pieces are
    ordinary text the model already emits; their rows are shared with everything else)."""
    ids = processor.tokenizer(marker, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        return None
    names = {id(m): n for n, m in model.named_modules()}
    rows = {names[id(model.get_input_embeddings())].split(".")[-1]: ids}
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        rows[names[id(head)].split(".")[-1]] = ids
    return rows


def lora_model(model, adapter, cfg: LoraTrainConfig, token_rows: dict[str, list[int]] | None = None):
    from peft import LoraConfig, get_peft_model

    dropout = cfg.dropout
    if adapter.lora_target_parameters and dropout:
        # PEFT adapts fused expert weights (target_parameters) only without dropout
        warnings.warn(
            f"{adapter.family}: LoRA dropout {dropout} -> 0 (PEFT's expert-weight LoRA has none)", stacklevel=2
        )
        dropout = 0.0
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=dropout,
        target_modules=adapter.lora_target_regex,
        # fused mixture-of-experts weights are parameters, not Linear modules (PEFT's target_parameters)
        target_parameters=list(adapter.lora_target_parameters) or None,
        bias="none",
        trainable_token_indices=token_rows if cfg.train_marker_rows else None,
    )
    return get_peft_model(model, config)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines of steps up to the checkpoint: the steps after it run again."""
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def lora_identity(model_spec: str, data: Path, cfg: LoraTrainConfig) -> dict:
    """What a LoRA run's result depends on (the job identity of ``train lora``)."""
    from evostreaming.models.loading import weights_fingerprint
    from evostreaming.models.specs import parse_spec

    return {
        "model": model_spec,
        "model_weights": weights_fingerprint(parse_spec(model_spec).folder()),
        "data_sha256": file_digest(data),
        "config": asdict(cfg),
    }


def train_lora(
    model_spec: str,
    data: Path,
    output: Path,
    cfg: LoraTrainConfig | None = None,
    console: Console | None = None,
    max_steps_this_run: int | None = None,
    loaded=None,
    *,
    load_frames: FrameLoader,
) -> Path:
    """Train a LoRA adapter on ``data``; writes ``output/adapter`` (PEFT format, safetensors).
    ``load_frames`` turns a row's video id into frames (e.g. ``evolve.pool.load_frames``)."""
    from accelerate import Accelerator
    from peft import PeftModel

    from evostreaming.models.loading import load_model, record_adapter_base

    cfg = cfg or LoraTrainConfig()
    console = console or Console(stderr=True)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = load_conversations(data)
    loaded = loaded or load_model(model_spec, dtype="float32")
    adapter, processor = loaded.adapter, loaded.processor
    ckpt = output / "checkpoint"
    torch.manual_seed(cfg.seed)
    if (ckpt / "adapter_config.json").exists():
        model = PeftModel.from_pretrained(loaded.model, ckpt, is_trainable=True)
    else:
        model = lora_model(loaded.model, adapter, cfg, marker_token_rows(loaded.model, processor, rows[0]["marker"]))
    order = list(range(len(rows)))
    random.Random(cfg.seed).shuffle(order)
    total_seqs = int(math.ceil(len(rows) * cfg.epochs))
    order = (order * int(math.ceil(cfg.epochs)))[:total_seqs]
    steps = int(math.ceil(total_seqs / cfg.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_ratio * steps))

    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    start = 0
    if (ckpt / "trainer_state.json").exists():
        start = load_training_state(ckpt, optimizer, scheduler)["step"]
        if start > steps:
            raise TrainDataError(
                f"{ckpt} is at step {start}, past this run's {steps} steps: it was trained on other data or "
                "settings; use a new --output (or --overwrite)"
            )
        console.print(f"resuming LoRA training from step {start} ({ckpt})")
        if int(os.environ.get("RANK", "0")) == 0:  # one writer under DDP
            _truncate_log(output / "train_log.jsonl", start)
    # bf16 autocast on a GPU over float32 master weights; plain float32 on the CPU
    on_gpu = torch.cuda.is_available()
    accelerator = Accelerator(cpu=not on_gpu, mixed_precision="bf16" if on_gpu else "no")
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    # Under DDP the processes share each batch's sequences (below); only the main process writes files.
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    if main:
        write_json(
            output / "lora_config.json",
            {**asdict(cfg), "model": model_spec, "data": str(data), "conversations": len(rows), "steps": steps},
        )
    end = steps if max_steps_this_run is None else min(steps, start + max_steps_this_run)
    log = open(output / "train_log.jsonl" if main else os.devnull, "a")
    cache: dict = {}
    try:
        with job_progress(console, "LoRA") as progress:
            task = progress.add_task("lora", total=steps, completed=start, status="")
            for step in range(start, end):
                batch_ids = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                losses = []
                # One sequence at a time, gradients summed over the batch (mean loss per sequence).
                # Under DDP each process takes every world-th sequence of the batch and scales by the
                # world size, so the gradients' average over processes is one process's sum; only the
                # last backward of a step synchronizes. A process left without a sequence (a batch
                # smaller than the world) joins the average with a zero-weight one.
                mine = batch_ids[rank::world] or batch_ids[:1]
                weight = world / len(batch_ids) if batch_ids[rank::world] else 0.0
                for j, idx in enumerate(mine):
                    inputs = encode_conversation(
                        rows[idx],
                        adapter,
                        processor,
                        loaded.model,
                        load_frames,
                        cache,
                        cfg.max_pixels,
                        cfg.silent_keep,
                        cfg.seed,
                        cfg.visual_tokens_per_frame,  # frames encoded as the session encodes them
                    )
                    sync = j == len(mine) - 1
                    with nullcontext() if sync or world == 1 else accelerator.no_sync(model):
                        loss = model(**{k: v.to(accelerator.device) for k, v in inputs.items()}).loss
                        accelerator.backward(loss * weight if world > 1 else loss / len(batch_ids))
                    if weight:
                        losses.append(loss.item())
                if world > 1:
                    from accelerate.utils import gather_object

                    losses = gather_object(losses)
                accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                mean = sum(losses) / len(losses)
                progress.update(task, advance=1, status=f"loss {mean:.3f}")
                log.write(json.dumps({"step": step + 1, "loss": mean, "lr": scheduler.get_last_lr()[0]}) + "\n")
                log.flush()
                if main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == end):
                    save_checkpoint(ckpt, accelerator.unwrap_model(model), None, optimizer, scheduler, step + 1)
    finally:
        log.close()
    final = output / "adapter"
    if end == steps and main:
        accelerator.unwrap_model(model).save_pretrained(final, safe_serialization=True)
        record_adapter_base(final, model_spec)
    accelerator.wait_for_everyone()
    return final
