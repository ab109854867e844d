"""Model specs: the one resolver from what a user writes (``pocket``, ``pocket:DIR``, ``tiny:<family>``,
``real:<checkpoint>``, a local folder, a hub id) to the code that loads it.

A scheme is ``name:argument``; each registers with one ``SCHEMES.register`` line. Text without a
registered scheme is a local folder when one exists there, else a Hugging Face hub id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evostreaming.models.placement import Placement
from evostreaming.utils.errors import UserError
from evostreaming.utils.registry import Registry


class ModelLoadError(UserError, RuntimeError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as the user wrote it
    scheme: str  # a registered scheme, "path" (a local folder) or "hub" (a hub id)
    arg: str | None  # after "scheme:", the path or the hub id; None for a bare scheme ("pocket")

    def folder(self) -> Path | None:
        """The local folder the weights load from (None: built in memory, or a hub id)."""
        return SCHEMES.get(self.scheme).folder(self)

    def load(self, placement: Placement, *, trust_remote_code: bool = False):
        """(model, processor), placed: on its device (or a device map) in its precision."""
        model, processor = SCHEMES.get(self.scheme).load(self, placement, trust_remote_code)
        if placement.attn != "auto" and getattr(model.config, "_attn_implementation", None) != placement.attn:
            model.set_attn_implementation(placement.attn)
        if placement.device_map is None:
            model = model.to(device=placement.resolved_device(), dtype=placement.torch_dtype())
        return model, processor


@dataclass(frozen=True)
class Scheme:
    load: Callable[[ModelSpec, Placement, bool], tuple]  # (spec, placement, trust_remote_code) -> (model, processor)
    folder: Callable[[ModelSpec], Path | None] = lambda spec: None
    help: str = ""


SCHEMES: Registry[Scheme] = Registry("model spec scheme")


def parse_spec(text: str) -> ModelSpec:
    name, colon, arg = text.partition(":")
    if name in SCHEMES and name not in ("path", "hub"):
        return ModelSpec(text, name, arg if colon else None)
    return ModelSpec(text, "path" if Path(text).expanduser().exists() else "hub", text)


def spec_help() -> str:
    return ", ".join(s.help for _, s in SCHEMES.items() if s.help)


# -- the built-in schemes ------------------------------------------------------------------------
def _pocket_folder(spec: ModelSpec) -> Path:
    from evostreaming.models.pocket import WEIGHTS_DIR

    return Path(spec.arg) if spec.arg else WEIGHTS_DIR


def _load_pocket(spec: ModelSpec, placement: Placement, trust_remote_code: bool):
    from evostreaming.models.pocket import load_pocket

    try:
        return load_pocket(spec.arg)
    except FileNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc


def _load_tiny(spec: ModelSpec, placement: Placement, trust_remote_code: bool):
    from evostreaming.models.tiny import build_tiny

    tm = build_tiny(spec.arg or "")
    return tm.model, tm.processor


def _load_real(spec: ModelSpec, placement: Placement, trust_remote_code: bool):
    from evostreaming.models.real.build import build_real

    if not spec.arg:
        raise ModelLoadError(
            "real: needs a checkpoint, e.g. real:Qwen/Qwen2.5-VL-7B-Instruct (see `evostreaming models`)"
        )
    try:
        return build_real(spec.arg, placement)
    except KeyError as exc:
        raise ModelLoadError(exc.args[0]) from exc


def _local_folder(spec: ModelSpec) -> Path | None:
    local = Path(spec.arg).expanduser()
    return local if local.is_dir() else None


# Model types we know and cannot stream, with the reason and what to use instead.
NOT_STREAMABLE = {
    "minicpmv": (
        "MiniCPM-V 4.5 and earlier ship remote code (loaded only with --trust-remote-code) whose forward takes "
        "MiniCPM's own `data` dict (image bounds, slices) instead of transformers' image-text-to-text inputs, "
        "so no incremental session can drive it; use the transformers-native MiniCPM-V 4.6 or 4.7 "
        "(model types minicpmv4_6, minicpmv4_7), which stream exactly"
    ),
}


def _refuse_unstreamable(spec: ModelSpec, config_file: Path) -> None:
    """A known unstreamable model type is refused before any of its code could run."""
    import json

    if not config_file.is_file():
        return
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError):
        return  # AutoConfig reports a broken file with its own message
    if model_type in NOT_STREAMABLE:
        raise ModelLoadError(f"model {spec.text!r} (model_type {model_type!r}): {NOT_STREAMABLE[model_type]}")


def _load_pretrained(spec: ModelSpec, placement: Placement, trust_remote_code: bool):
    """``AutoModelForImageTextToText`` + ``AutoProcessor`` from a folder or a hub id (hub ids need
    network access or a populated Hugging Face cache)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from evostreaming.models.family import family_names, supported_model_types

    local = Path(spec.arg).expanduser()
    where = str(local) if local.exists() else spec.arg
    _refuse_unstreamable(spec, local / "config.json")
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        scheme = spec.arg.partition(":")[0]
        if local.exists():
            hint = "the folder has no usable config.json (with a model_type)"
        elif ":" in spec.arg and "/" not in scheme:
            # a hub id never holds a colon: this is a misspelt scheme, not a network problem
            raise ModelLoadError(
                f"cannot load model {spec.text!r}: {scheme + ':'!r} is not a model scheme; use one of: {spec_help()}"
            ) from exc
        else:
            hint = (
                "it is neither a local folder nor a reachable hub id (offline? set HF_HUB_OFFLINE=1 and use a cached "
                "model or a local path)"
            )
        raise ModelLoadError(f"cannot load model {spec.text!r}: {hint} ({exc})") from exc
    supported = supported_model_types()
    if config.model_type in NOT_STREAMABLE:
        raise ModelLoadError(
            f"model {spec.text!r} (model_type {config.model_type!r}): {NOT_STREAMABLE[config.model_type]}"
        )
    if config.model_type not in supported:
        raise ModelLoadError(
            f"model {spec.text!r} has model_type {config.model_type!r}, which has no streaming adapter; "
            f"supported: {', '.join(sorted(supported))} (families: {', '.join(family_names())})"
        )
    model = AutoModelForImageTextToText.from_pretrained(
        where,
        dtype=placement.torch_dtype(),
        attn_implementation=placement.attn_implementation(),
        device_map=placement.device_map,
        trust_remote_code=trust_remote_code,
    )
    processor = AutoProcessor.from_pretrained(where, trust_remote_code=trust_remote_code)
    return model, processor


SCHEMES.register("pocket", Scheme(_load_pocket, _pocket_folder, "pocket, pocket:DIR"))
SCHEMES.register("tiny", Scheme(_load_tiny, help="tiny:<family>"))
SCHEMES.register("real", Scheme(_load_real, help="real:<checkpoint> (a random-weight twin)"))
SCHEMES.register("path", Scheme(_load_pretrained, _local_folder, "a local folder"))
SCHEMES.register("hub", Scheme(_load_pretrained, help="a hub id"))
