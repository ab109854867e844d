"""Load a model and processor from a spec: ``tiny:<family>``, ``pocket``, a hub id or a local path."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from evostreaming.models.adapters import ADAPTERS, FamilyAdapter, adapter_for


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    adapter: FamilyAdapter
    spec: str


class ModelLoadError(RuntimeError):
    pass


def load_model(
    spec: str,
    *,
    dtype: str = "auto",
    device: str | None = None,
    adapter_dir: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``spec`` for streaming.

    * ``pocket`` (or ``pocket:DIR``): the pocket VideoLLM trained in ShapesWorld (committed weights).
    * ``tiny:<family>``: a tiny random-weight model built offline (tests, benchmarks).
    * a local folder or a hub id: ``AutoModelForImageTextToText`` + ``AutoProcessor``. Hub ids need
      network access or a populated Hugging Face cache.
    ``adapter_dir`` applies a PEFT LoRA adapter on top.
    """
    if spec == "pocket" or spec.startswith("pocket:"):
        from evostreaming.models.pocket import load_pocket

        path = spec.split(":", 1)[1] if ":" in spec else None
        try:
            model, processor = load_pocket(path)
        except FileNotFoundError as exc:
            raise ModelLoadError(str(exc)) from exc
    elif spec.startswith("tiny:"):
        from evostreaming.models.tiny import build_tiny

        family = spec.split(":", 1)[1]
        tm = build_tiny(family)
        model, processor = tm.model, tm.processor
    else:
        model, processor = _load_pretrained(spec, dtype=dtype, trust_remote_code=trust_remote_code)
    if adapter_dir:
        from peft import PeftModel

        check_adapter_base(adapter_dir, _model_folder(spec))
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    if device:
        model = model.to(device)
    model.eval()
    return LoadedModel(model, processor, adapter_for(model), spec)


def _model_folder(spec: str) -> Path | None:
    """The local folder a spec loads from (None: built in memory, or a hub id)."""
    if spec == "pocket" or spec.startswith("pocket:"):
        from evostreaming.models.pocket import WEIGHTS_DIR

        return Path(spec.split(":", 1)[1]) if ":" in spec else WEIGHTS_DIR
    local = Path(spec).expanduser()
    return local if not spec.startswith("tiny:") and local.is_dir() else None


def _same_weights(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    fa, fb = a / "model.safetensors", b / "model.safetensors"
    if not (fa.is_file() and fb.is_file()) or fa.stat().st_size != fb.stat().st_size:
        return False
    return hashlib.sha256(fa.read_bytes()).digest() == hashlib.sha256(fb.read_bytes()).digest()


def check_adapter_base(adapter_dir: str | Path, model_folder: Path | None) -> None:
    """A LoRA adapter only means something on the model it was trained on. A round-2 EvoStreaming
    adapter, for one, sits on round 1's merged model, not on the base: refuse the wrong pairing
    when both are local folders that still exist (a hub id or a moved folder cannot be checked)."""
    config = Path(adapter_dir) / "adapter_config.json"
    if model_folder is None or not config.is_file():
        return
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base or not Path(base).is_dir() or _same_weights(Path(base), model_folder):
        return
    raise ModelLoadError(
        f"adapter {adapter_dir} was trained on {base} ({config}: base_model_name_or_path), not on {model_folder}; "
        f"load it on that model (--model {base}). A round-N adapter of `evolve run` sits on round N-1's merged model."
    )


def _load_pretrained(spec: str, *, dtype: str, trust_remote_code: bool):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    local = Path(spec).expanduser()
    where = str(local) if local.exists() else spec
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        hint = (
            "the folder has no usable config.json (with a model_type)"
            if local.exists()
            else (
                "it is neither a local folder nor a reachable hub id (offline? set HF_HUB_OFFLINE=1 and use a cached "
                "model or a local path)"
            )
        )
        raise ModelLoadError(f"cannot load model {spec!r}: {hint} ({exc})") from exc
    supported = {t for cls in ADAPTERS.values() for t in cls.model_types}
    if config.model_type not in supported:
        raise ModelLoadError(
            f"model {spec!r} has model_type {config.model_type!r}, which has no streaming adapter; "
            f"supported: {', '.join(sorted(supported))}"
        )
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForImageTextToText.from_pretrained(where, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    processor = AutoProcessor.from_pretrained(where, trust_remote_code=trust_remote_code)
    return model, processor
