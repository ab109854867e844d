"""Does incremental streaming equal one offline forward? The check behind ``evostreaming models --check``.

A short stream with every kind of step (frames of different sizes, user questions, a teacher-forced
reply, a silent decision, a spoken one with its speculative tokens undone) is fed incrementally; then
one offline forward over the same conversation gives the reference logits of every cached token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evostreaming.models.placement import to_model
from evostreaming.stream.session import SessionConfig, StreamingSession


@dataclass(frozen=True)
class ExactnessResult:
    max_abs_diff: float
    tokens: int
    seconds: float

    def passed(self, tol: float = 1e-4) -> bool:
        return self.max_abs_diff <= tol


@torch.no_grad()
def check_exactness(model, processor, frames: int = 6, seed: int = 0) -> ExactnessResult:
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    s = StreamingSession(model, processor, config=SessionConfig(max_new_tokens=2), keep_inputs=True)
    for k in range(frames):
        s.push_frame(
            rng.integers(0, 255, (56 + 14 * (k % 3), 84, 3), dtype=np.uint8), "What is it?" if k % 3 == 1 else None
        )
        if k % 3 == 0:
            s.append_reply("It is red." if k else s.config.silence_marker)
        else:
            s.config.silence_threshold = 0.0 if k % 3 == 1 else 1.01  # silent, then respond
            d = s.decide()
            if not d.silent:
                s.generate_reply(ban_marker_start=d.greedy_silent)
    s.sync()
    ids, mm = s.cached_inputs()
    ref = model(**to_model(model, s.adapter.offline_inputs(model, ids, mm))).logits[0].float()
    inc = torch.cat(s.logit_log)
    if inc.shape != ref.shape:
        return ExactnessResult(float("inf"), int(ids.shape[0]), time.perf_counter() - t0)
    return ExactnessResult(float((inc - ref).abs().max()), int(ids.shape[0]), time.perf_counter() - t0)
