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

from evostreaming.models.adapter import FamilyAdapter

IGNORE = -100


@dataclass
class Turn:
    frame: object  # PIL image or (H, W, 3) uint8 array
    user_text: str | None
    reply: str  # the silence marker or a response
    trained: bool = True  # False: the reply is context only (no loss on it)


class _Builder:
    """Accumulates adapter segments into ids, labels and image tensors."""

    def __init__(self, adapter: FamilyAdapter, processor, visual_tokens: int | None = None):
        self.adapter, self.processor = adapter, processor
        self.visual_tokens = visual_tokens  # the frame budget, as the session encodes frames
        self.ids: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.mm: list[dict] = []

    def add(self, text: str, image=None, train: bool = False) -> None:
        if image is not None and not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image, np.uint8))
        seg = self.adapter.encode(self.processor, text, image, self.visual_tokens if image is not None else None)
        self.ids.append(seg.input_ids)
        self.labels.append(seg.input_ids.clone() if train else torch.full_like(seg.input_ids, IGNORE))
        if seg.mm_kwargs:
            self.mm.append(seg.mm_kwargs)

    def build(self) -> dict[str, torch.Tensor]:
        input_ids = torch.cat(self.ids)
        out = {"input_ids": input_ids, "labels": torch.cat(self.labels), **self.adapter.merge_mm(self.mm)}
        # the newline after the turn-end token is formatting; like offline SFT, predict only the end token
        close = self.adapter.encode(self.processor, self.adapter.assistant_close()).input_ids
        if close.numel() > 1:
            lab = out["labels"]
            n = close.numel()
            for end in range(len(lab), 0, -1):
                if end >= n and torch.equal(input_ids[end - n : end], close) and lab[end - 1] != IGNORE:
                    lab[end - n + 1 : end] = IGNORE
        return out


def render_conversation(
    adapter: FamilyAdapter,
    processor,
    system_prompt: str,
    turns: list[Turn],
    silence_marker: str,
    visual_tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """``visual_tokens``: the frame budget (``--visual-tokens-per-frame``), as the session encodes frames."""
    prompt = system_prompt.replace("{marker}", silence_marker)
    b = _Builder(adapter, processor, visual_tokens)
    if prompt:
        b.add(adapter.system(prompt))
    elif adapter.preamble():
        b.add(adapter.preamble())
    for turn in turns:
        b.add(adapter.user_open())
        b.add(adapter.frame(), turn.frame)
        if turn.user_text:
            b.add(adapter.user_text(turn.user_text))
        b.add(adapter.assistant_open())
        b.add(adapter.reply_text(turn.reply), train=turn.trained)
        b.add(adapter.assistant_close(), train=turn.trained)
    return b.build()


def render_offline(
    adapter: FamilyAdapter,
    processor,
    system_prompt: str | None,
    frames: list,
    user_text: str,
    reply: str,
    visual_tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """An offline exchange: all ``frames`` and the question in one user message, then the reply
    (the chat template's layout for a multi-image question; loss on the reply only)."""
    b = _Builder(adapter, processor, visual_tokens)
    if system_prompt:
        b.add(adapter.system(system_prompt))
    elif adapter.preamble():
        b.add(adapter.preamble())
    b.add(adapter.user_open())
    for frame in frames:
        b.add(adapter.frame(), frame)
    b.add(adapter.user_text(user_text))
    b.add(adapter.assistant_open())
    b.add(adapter.reply_text(reply), train=True)
    b.add(adapter.assistant_close(), train=True)
    return b.build()
