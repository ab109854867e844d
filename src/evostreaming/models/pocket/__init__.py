"""The pocket VideoLLM (a small Qwen3-VL trained in ShapesWorld): its committed weights and loader.

``load_pocket()`` loads ``models/pocket/weights``; its recipe (``world/pocket/``: ``build_pocket``,
``evostreaming world train-pocket``) makes and trains it.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def pocket_available() -> bool:
    return (WEIGHTS_DIR / "config.json").exists()


def load_pocket(path: str | Path | None = None, dtype=None):
    """(model, processor) from a pocket folder (default: the committed release)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    where = Path(path) if path else WEIGHTS_DIR
    if not (where / "config.json").exists():
        raise FileNotFoundError(
            f"{where}: no pocket model here; train one with 'evostreaming world train-pocket --output DIR'"
        )
    model = AutoModelForImageTextToText.from_pretrained(where, dtype=dtype or torch.float32)
    processor = AutoProcessor.from_pretrained(where)
    return model.eval(), processor
