import functools
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OVO = SHARED / "data" / "ovo-bench"
SAMPLE_VIDEOS = OVO / "sample" / "videos"


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (see ../shared/README.md)")
    return path


@functools.cache
def tiny(family: str):
    from evostreaming.models.tiny import build_tiny

    return build_tiny(family)


QWEN_FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
