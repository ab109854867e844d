"""Stage prompts, loaded from one versioned YAML file (``prompts.yaml`` beside this module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.yaml"


@dataclass(frozen=True)
class Prompts:
    version: str
    taxonomy: str
    question: str
    relevance: str
    answer: str
    task_types: list[str]


def load_prompts(path: str | Path | None = None) -> Prompts:
    path = Path(path) if path else DEFAULT_PROMPTS
    data = yaml.safe_load(path.read_text())
    missing = {"version", "taxonomy", "question", "relevance", "answer", "task_types"} - set(data or {})
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    return Prompts(**{k: data[k] for k in ("version", "taxonomy", "question", "relevance", "answer", "task_types")})
