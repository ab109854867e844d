"""The silence decision taken at every step.

The assistant turn of a step is either the silence marker or a response. The session scores
the marker under the model (teacher-forcing its tokens, which it keeps in the cache anyway when
silent) and decides without sampling a response:

* ``threshold=None`` (default): silent iff greedy decoding would emit the marker, i.e. every
  marker token is the argmax at its position.
* ``threshold=t``: silent iff P(marker) >= t. A higher t demands more confidence before
  staying silent, so the model responds more often; a lower t makes it quieter. This is the
  "responsiveness" knob; it needs no retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_SILENCE_MARKER = "<silent>"


@dataclass(frozen=True)
class SilenceDecision:
    silent: bool
    silence_prob: float  # P(marker | context), product over the marker's tokens
    greedy_silent: bool  # whether greedy decoding would have produced the marker


def decide(marker_logits: torch.Tensor, marker_ids: list[int], threshold: float | None) -> SilenceDecision:
    """Decide from the logits at the marker's positions.

    ``marker_logits`` has shape (len(marker_ids), vocab): row i predicts marker token i.
    """
    logp = torch.log_softmax(marker_logits.float(), dim=-1)
    idx = torch.tensor(marker_ids, device=marker_logits.device)
    token_logp = logp[torch.arange(len(marker_ids), device=marker_logits.device), idx]
    prob = float(token_logp.sum().exp())
    greedy = bool((marker_logits.argmax(dim=-1) == idx).all())
    silent = greedy if threshold is None else prob >= threshold
    return SilenceDecision(silent=silent, silence_prob=prob, greedy_silent=greedy)
