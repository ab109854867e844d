"""Load a model and processor for streaming from a spec (``models.specs``), optionally with a LoRA
adapter, and guard adapters against the wrong base weights."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from evostreaming.models.adapter import FamilyAdapter
from evostreaming.models.family import adapter_for
from evostreaming.models.placement import Placement
from evostreaming.models.specs import ModelLoadError, parse_spec


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    adapter: FamilyAdapter
    spec: str
    adapter_dir: str | None = None  # the LoRA adapter merged into ``model``, if any

    def identity(self) -> dict:
        """What these weights are, for a job identity or a server's ``session.created``: the spec, a
        fingerprint of a local folder's weights (None for tiny: and hub ids) and the adapter's digest."""
        from evostreaming.utils.jobs import file_digest

        adapter = Path(self.adapter_dir) / "adapter_model.safetensors" if self.adapter_dir else None
        return {
            "model": self.spec,
            "weights": weights_fingerprint(parse_spec(self.spec).folder()),
            "adapter": file_digest(adapter) if adapter is not None and adapter.is_file() else self.adapter_dir,
        }


def load_model(
    spec: str,
    *,
    dtype: str = "auto",
    device: str | None = "auto",
    attn: str = "auto",
    device_map: str | None = None,
    adapter_dir: str | None = None,
    trust_remote_code: bool = False,
    placement: Placement | None = None,
) -> LoadedModel:
    """Load ``spec`` for streaming (see ``models.specs``).

    * ``pocket`` (or ``pocket:DIR``): the pocket VideoLLM trained in ShapesWorld (committed weights).
    * ``tiny:<family>``: a tiny random-weight model built offline (tests, benchmarks).
    * a local folder or a hub id: ``AutoModelForImageTextToText`` + ``AutoProcessor``. Hub ids need
      network access or a populated Hugging Face cache.
    ``adapter_dir`` applies a PEFT LoRA adapter on top. ``placement`` (or ``device``, ``dtype``, ``attn``,
    ``device_map``) says where and in what precision it runs (``models.placement``).
    """
    placement = placement or Placement(device=device or "auto", dtype=dtype, attn=attn, device_map=device_map)
    parsed = parse_spec(spec)
    base = trained = None
    if adapter_dir:  # every check the adapter's files allow comes before minutes of loading the model
        if not Path(adapter_dir).is_dir():
            raise ModelLoadError(f"--adapter {adapter_dir}: no such folder (a PEFT adapter folder: round-1/adapter)")
        if not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ModelLoadError(f"--adapter {adapter_dir}: no adapter_config.json there (a PEFT adapter folder?)")
        check_adapter_base(adapter_dir, parsed.folder())
        base = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        stamp = Path(adapter_dir) / BASE_WEIGHTS
        trained = json.loads(stamp.read_text()).get("model") if stamp.is_file() else None
        if trained and trained != spec and "tiny:" in (trained[:5], spec[:5]):  # no folder to compare: the spec is all
            raise ModelLoadError(
                f"adapter {adapter_dir} was trained on {trained!r} ({stamp}), not on {spec!r}; load it on that model"
            )
    model, processor = parsed.load(placement, trust_remote_code=trust_remote_code)
    if adapter_dir:
        from peft import PeftModel

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                peft_model = PeftModel.from_pretrained(model, adapter_dir)
        except (RuntimeError, ValueError, KeyError, IndexError) as exc:  # shapes or module names of another model
            raise ModelLoadError(
                f"adapter {adapter_dir} does not fit model {spec!r} ({str(exc).splitlines()[0][:160]}); it was "
                f"trained on {trained or base or 'another model'!r}: load it on that model"
            ) from exc
        # PEFT only warns when the adapter's weights do not cover the modules its config targets in this
        # model (another architecture): those would keep their untrained LoRA, silently the base model
        missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
        for w in caught:
            if str(w.message) not in missing:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if missing:
            first = re.search(r"'([^']+)'", missing[0])
            raise ModelLoadError(
                f"adapter {adapter_dir} does not fit model {spec!r}: the adapter holds no weights for modules "
                f"it targets in this model (e.g. {first.group(1) if first else missing[0][:120]}); it was trained on "
                f"{trained or base or 'another model'!r}: load it on that model"
            )
        model = peft_model.merge_and_unload()
    model.eval()
    return LoadedModel(model, processor, adapter_for(model, processor), spec, str(adapter_dir) if adapter_dir else None)


BASE_WEIGHTS = "base_weights.json"  # written beside a trained adapter: which weights it was trained on
_EDGE = 8 << 20  # bytes hashed at each end of a weights file: cheap on a 15 GB checkpoint, whole on the pocket


def weights_fingerprint(folder: Path | None) -> str | None:
    """A cheap identity of a folder's single-file weights (size, first and last 8 MB); None when the
    folder has none (a hub id, sharded weights)."""
    from evostreaming.utils.jobs import edge_digest

    f = folder / "model.safetensors" if folder else None
    if f is None or not f.is_file():
        return None
    return edge_digest(f, _EDGE)


def _same_weights(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (weights_fingerprint(a) or "a") == (weights_fingerprint(b) or "b")


def check_adapter_base(adapter_dir: str | Path, model_folder: Path | None) -> None:
    """A LoRA adapter only means something on the model it was trained on: refuse a wrong pairing
    before loading. A round-2 EvoStreaming adapter, for one, sits on round 1's merged model, not on
    the base (caught from ``adapter_config.json``'s base folder); an adapter trained before the
    weights in the same folder changed (a newer pocket model) is caught from ``base_weights.json``.
    A hub id, sharded weights or a moved base folder cannot be checked and pass."""
    adapter_dir = Path(adapter_dir)
    config = adapter_dir / "adapter_config.json"
    if model_folder is None or not config.is_file():
        return
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if base and Path(base).is_dir() and not _same_weights(Path(base), model_folder):
        raise ModelLoadError(
            f"adapter {adapter_dir} was trained on {base} ({config}: base_model_name_or_path), not on "
            f"{model_folder}; load it on that model (--model {base}). A round-N adapter of `evolve run` sits on "
            "round N-1's merged model."
        )
    stamp = adapter_dir / BASE_WEIGHTS
    now = weights_fingerprint(model_folder)
    if stamp.is_file() and now:
        trained_on = json.loads(stamp.read_text()).get("fingerprint")
        if trained_on and trained_on != now:
            raise ModelLoadError(
                f"adapter {adapter_dir} was trained on other weights than those now in {model_folder} "
                f"({stamp}); the model changed since (a newer pocket model?). Train the adapter again "
                "(e.g. `make demo` into a new --output)."
            )


def record_adapter_base(adapter_dir: Path, model_spec: str) -> None:
    """Write which weights an adapter was trained on (read back by ``check_adapter_base``)."""
    # a model without a folder (tiny:, a hub id) has no fingerprint: its spec is recorded all the same
    fingerprint = weights_fingerprint(parse_spec(model_spec).folder())
    (Path(adapter_dir) / BASE_WEIGHTS).write_text(json.dumps({"model": model_spec, "fingerprint": fingerprint}))
