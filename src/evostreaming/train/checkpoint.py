"""Checkpoints without pickle: model weights via safetensors (save_pretrained), optimizer and
scheduler state flattened into a safetensors file plus a JSON sidecar for the non-tensor parts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
                meta["state"][str(pid)][k] = "__tensor__"
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, pstate in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "__tensor__" else v) for k, v in pstate.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, model, processor, optimizer, scheduler, step: int, extra: dict | None = None) -> Path:
    """Write atomically: into ``<folder>.tmp`` then rename, so a crash never leaves half a checkpoint."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if processor is not None:
        processor.save_pretrained(tmp)
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(meta))
    state = {"step": step, "scheduler": scheduler.state_dict() if scheduler is not None else None, **(extra or {})}
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, default=float))
    # the random streams (dropout masks), so that a resumed run draws what the uninterrupted one would
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng_state.safetensors"))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def load_training_state(folder: Path, optimizer, scheduler) -> dict:
    folder = Path(folder)
    if optimizer is not None and (folder / "optimizer.safetensors").exists():
        meta = json.loads((folder / "optimizer.json").read_text())
        optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")), meta))
    state = json.loads((folder / "trainer_state.json").read_text())
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    if (folder / "rng_state.safetensors").exists():
        rng = load_file(str(folder / "rng_state.safetensors"))
        torch.set_rng_state(rng["torch"])
        cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    return state
