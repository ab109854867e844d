import functools
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OVO = SHARED / "data" / "ovo-bench"
SAMPLE_VIDEOS = OVO / "sample" / "videos"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where CUDA is absent."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine: docs/gpu.md)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def chromium_or_skip():
    """(Debian's chromium, playwright's sync API), or skip saying how to install them."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; `make test` does it as root)")
    return chromium, pytest.importorskip("playwright.sync_api")


def offline_logits(session, model):
    """One offline forward over everything a ``keep_inputs`` session cached, on the model's device and
    in its precision: the reference the incremental logits must match."""
    import torch

    from evostreaming.models.placement import to_model

    ids, mm = session.cached_inputs()
    with torch.no_grad():
        return model(**to_model(model, session.adapter.offline_inputs(model, ids, mm))).logits[0].float()


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (see ../shared/README.md)")
    return path


@functools.cache
def tiny(family: str):
    from evostreaming.models import build_tiny

    return build_tiny(family)


def _mrope_families() -> list[str]:
    from evostreaming.models import FAMILIES

    return [name for name, f in FAMILIES.items() if f.adapter.positions_scheme == "mrope"]


def _qwen_families() -> list[str]:
    from evostreaming.models import FAMILIES
    from evostreaming.models.families.qwen2_vl import QwenVLAdapter

    return [name for name, f in FAMILIES.items() if issubclass(f.adapter, QwenVLAdapter)]


MROPE_FAMILIES = _mrope_families()  # every M-RoPE family, from the registry
QWEN_FAMILIES = _qwen_families()  # the Qwen-VL adapters (image_grid_thw, get_rope_index), from the registry


def one_row_lora_data(folder: Path) -> Path:
    """A one-conversation LoRA training file (an answer, then a silence) for the pocket model."""
    import json

    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT

    row = {
        "video": "world:5",
        "fps": 0.5,
        "system": DEFAULT_SYSTEM_PROMPT,
        "marker": "<silent>",
        "turns": [
            {"user_text": "how many shapes are there now?", "reply": "2"},
            {"user_text": None, "reply": "<silent>"},
        ],
    }
    data = folder / "train.jsonl"
    data.write_text(json.dumps(row) + "\n")
    return data


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it; closed before it is returned)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
