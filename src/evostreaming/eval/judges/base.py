"""Judges: J(response, gold) in [0, 1], or None when the judge itself failed. The registry: a spec is
``name`` or ``name:arguments`` (e.g. ``openai:URL,model=NAME``); each judge module registers a factory
``(arguments or None, cache folder or None) -> Judge`` with one ``JUDGES.register`` line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evostreaming.eval.schema import GoldAnswer
from evostreaming.utils.registry import Registry


class Judge:
    name = "judge"

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        raise NotImplementedError


JudgeFactory = Callable[[str | None, Path | None], Judge]
JUDGES: Registry[JudgeFactory] = Registry(
    "judge", discover="evostreaming.eval.judges", hint=" (docs/architecture.md: add a judge)"
)


def make_judge(spec: str, cache_dir: str | Path | None = None) -> Judge:
    """``rule`` | ``embedding`` | ``openai:URL,model=NAME[,key=ENVVAR]`` | any registered judge."""
    name, colon, args = spec.partition(":")
    if name not in JUDGES:
        raise ValueError(f"unknown judge {spec!r}: use {', '.join(JUDGES.names())} (openai as openai:URL,model=NAME)")
    return JUDGES.get(name)(args if colon else None, Path(cache_dir) if cache_dir else None)
