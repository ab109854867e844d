"""Stage prompts, loaded from one versioned YAML file (``prompts.yaml`` beside this module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.yaml"  # the pocket model's language
REAL_PROMPTS = Path(__file__).resolve().parent / "prompts_real.yaml"  # for real checkpoints (docs/evostreaming.md)
NAMED = {"pocket": DEFAULT_PROMPTS, "real": REAL_PROMPTS}


@dataclass(frozen=True)
class Prompts:
    version: str
    taxonomy: str
    question: str
    relevance: str
    answer: str
    task_types: list[str]
    # Closed-set stages (taxonomy, relevance) pick the likeliest allowed answer on a local model
    # instead of parsing free text (a served model still answers freely and is parsed).
    closed_choices: bool = False


def load_prompts(path: str | Path | None = None) -> Prompts:
    """A prompt set: a YAML file, or ``pocket`` / ``real`` for the shipped sets (default: pocket)."""
    path = NAMED.get(str(path), Path(path)) if path else DEFAULT_PROMPTS
    if not path.is_file():
        raise ValueError(f"--prompts {path}: no such file (a YAML prompt set, or 'pocket' / 'real')")
    data = yaml.safe_load(path.read_text())
    missing = {"version", "taxonomy", "question", "relevance", "answer", "task_types"} - set(data or {})
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    fields = ("version", "taxonomy", "question", "relevance", "answer", "task_types")
    return Prompts(**{k: data[k] for k in fields}, closed_choices=bool(data.get("closed_choices", False)))
