"""Where a model runs and in what precision: ``--device``, ``--dtype``, ``--attn``, ``--device-map``.

``auto`` means: CUDA when present, else the CPU; bfloat16 on a GPU, float32 on the CPU; the fastest
attention installed (FlashAttention-2 on CUDA when the ``flash_attn`` package is there, else PyTorch's
SDPA). ``device_map="auto"`` spreads a model larger than one GPU over all of them (accelerate).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTNS = ("auto", "sdpa", "flash_attention_2", "eager")


@dataclass(frozen=True)
class Placement:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    attn: str = "auto"  # auto | sdpa | flash_attention_2 | eager
    device_map: str | None = None  # "auto": spread over every GPU (a model larger than one)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: this machine has no CUDA device; use --device cpu or auto")
        if self.device.startswith("cuda:") and int(self.device[5:]) >= torch.cuda.device_count():
            raise ValueError(f"--device {self.device}: only {torch.cuda.device_count()} CUDA device(s) here")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.attn not in ATTNS:
            raise ValueError(f"--attn {self.attn!r}: use one of {', '.join(ATTNS)}")
        if self.attn == "flash_attention_2" and not _flash_attn_installed():
            raise ValueError("--attn flash_attention_2 needs the flash-attn package (pip install flash-attn)")
        if self.device_map not in (None, "auto"):
            raise ValueError(f"--device-map {self.device_map!r}: use auto (or leave it out)")

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if self.resolved_device().startswith("cuda") else torch.float32
        return getattr(torch, self.dtype)

    def attn_implementation(self) -> str:
        if self.attn != "auto":
            return self.attn
        on_gpu = self.resolved_device().startswith("cuda")
        return "flash_attention_2" if on_gpu and _flash_attn_installed() else "sdpa"

    def describe(self) -> dict:
        """The resolved choices, for run records."""
        return {
            "device": "auto (device_map)" if self.device_map else self.resolved_device(),
            "dtype": str(self.torch_dtype()).replace("torch.", ""),
            "attn": self.attn_implementation(),
        }


def _flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def to_model(model, inputs: dict) -> dict:
    """Forward inputs where ``model`` takes them: the device of its input embeddings (one GPU, or the
    first of a device_map), floating tensors (pixels) in its precision, ids and grids as they are."""
    device, dtype = model.get_input_embeddings().weight.device, model.dtype
    return {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in inputs.items()}
