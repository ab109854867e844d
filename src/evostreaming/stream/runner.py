"""Drive a StreamingSession over a frame source with user turns scheduled in stream time."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evostreaming.stream.session import StepResult, StreamingSession
from evostreaming.video.sources import Frame


@dataclass(frozen=True)
class UserTurn:
    time: float
    text: str


def attach_turns(frames: Iterable[Frame], turns: list[UserTurn]) -> Iterator[tuple[Frame, str | None]]:
    """Pair each frame with the user text that arrived since the previous frame (causal).

    A turn at time t is delivered with the first frame whose time is >= t; several turns
    arriving in the same interval are joined with newlines.
    """
    queue = sorted(turns, key=lambda u: u.time)
    i = 0
    for frame in frames:
        texts = []
        while i < len(queue) and queue[i].time <= frame.time + 1e-6:
            texts.append(queue[i].text)
            i += 1
        yield frame, ("\n".join(texts) if texts else None)


def run_stream(
    session: StreamingSession,
    frames: Iterable[Frame],
    turns: list[UserTurn],
    *,
    on_step: Callable[[StepResult], None] | None = None,
    jsonl: Path | None = None,
    max_steps: int | None = None,
) -> list[StepResult]:
    results: list[StepResult] = []
    out = open(jsonl, "w", encoding="utf-8") if jsonl else None
    try:
        for n, (frame, text) in enumerate(attach_turns(frames, turns)):
            if max_steps is not None and n >= max_steps:
                break
            res = session.step(frame.image, frame.time, text)
            results.append(res)
            if out:
                out.write(json.dumps(res.to_dict()) + "\n")
                out.flush()
            if on_step:
                on_step(res)
    finally:
        if out:
            out.close()
    return results
