"""Render a whole streaming conversation to training tensors, token for token what the session feeds.

A streaming conversation is: the system prompt, then one step per frame with optional user text
and the assistant's reply (the silence marker or a response). ``render_conversation`` produces
input ids, labels (assistant replies and their turn ends only) and the image tensors, using the
family adapter's segments exactly as ``StreamingSession`` does, so training and inference see
the same tokens (tested against ``StreamingSession.cached_inputs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from evostreaming.models.adapters.base import FamilyAdapter

IGNORE = -100


@dataclass
class Turn:
    frame: object  # PIL image or (H, W, 3) uint8 array
    user_text: str | None
    reply: str  # the silence marker or a response
    trained: bool = True  # False: the reply is context only (no loss on it)


def render_conversation(
    adapter: FamilyAdapter, processor, system_prompt: str, turns: list[Turn], silence_marker: str
) -> dict[str, torch.Tensor]:
    prompt = system_prompt.replace("{marker}", silence_marker)
    ids: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    mm: list[dict] = []

    def add(text: str, image=None, train: bool = False):
        seg = adapter.encode(processor, text, image)
        ids.append(seg.input_ids)
        labels.append(seg.input_ids.clone() if train else torch.full_like(seg.input_ids, IGNORE))
        if seg.mm_kwargs:
            mm.append(seg.mm_kwargs)

    if prompt:
        add(adapter.system(prompt))
    for turn in turns:
        image = turn.frame if isinstance(turn.frame, Image.Image) else Image.fromarray(np.asarray(turn.frame, np.uint8))
        add(adapter.user_open())
        add(adapter.frame(), image)
        if turn.user_text:
            add(adapter.user_text(turn.user_text))
        add(adapter.assistant_open())
        add(adapter.reply_text(turn.reply), train=turn.trained)
        add(adapter.assistant_close(), train=turn.trained)
    input_ids = torch.cat(ids)
    out = {"input_ids": input_ids, "labels": torch.cat(labels), **adapter.merge_mm(mm)}
    # the newline after the turn-end token is formatting; like offline SFT, predict only the end token
    close = adapter.encode(processor, adapter.assistant_close()).input_ids
    if close.numel() > 1:
        lab = out["labels"]
        n = close.numel()
        for end in range(len(lab), 0, -1):
            if end >= n and torch.equal(input_ids[end - n : end], close) and lab[end - 1] != IGNORE:
                lab[end - n + 1 : end] = IGNORE
    return out
