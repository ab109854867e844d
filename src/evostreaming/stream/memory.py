"""Bounded KV memory: which cached segments to evict, and how to evict them exactly.

Semantics (see docs/streaming.md): the session keeps the system prompt, the frames of the
last ``window_frames`` steps, and the text of the last ``max_text_turns`` steps that carry
text (a user turn or a response). Older frames are evicted; a step left with nothing but a
silent reply is evicted whole. After eviction, the cache equals *exactly* the cache of the
same conversation with the evicted pieces never present: the keys that follow an evicted
piece are re-rotated back by that piece's position span, so positions stay compact and never
exceed the model's range however long the stream runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Segment:
    """A contiguous run of cached tokens of one kind, belonging to one step (-1: system)."""

    kind: str  # system | open | frame | text | prompt | reply | close
    step: int
    n_tokens: int
    pos_start: int
    pos_end: int  # first position after the segment
    silent: bool = False  # for reply segments: the reply was the silence marker

    @property
    def pos_span(self) -> int:
        return self.pos_end - self.pos_start


@dataclass(frozen=True)
class MemoryPolicy:
    """``window_frames=None`` keeps everything (unbounded mode)."""

    window_frames: int | None = None
    max_text_turns: int | None = 64

    def __post_init__(self) -> None:
        if self.window_frames is not None and self.window_frames < 1:
            raise ValueError(f"a bounded memory keeps at least 1 frame; got window_frames={self.window_frames}")
        if self.max_text_turns is not None and self.max_text_turns < 0:
            raise ValueError(f"--max-text-turns must be >= 0 (0 keeps no text turn); got {self.max_text_turns}")

    @classmethod
    def for_stream(cls, seconds: float, fps: float, max_text_turns: int | None = 64) -> MemoryPolicy:
        """The window a stream at ``fps`` needs to keep ``seconds`` of frames (0 seconds: unbounded).
        The one place seconds become frames: a session whose fps changes gets a new policy from here."""
        window = math.ceil(seconds * fps) if seconds > 0 else None
        return cls(window_frames=window, max_text_turns=max_text_turns)

    @property
    def bounded(self) -> bool:
        return self.window_frames is not None

    def select(self, segments: list[Segment], current_step: int) -> set[int]:
        """Indices of segments to evict; never touches the system prompt or the current step."""
        if not self.bounded:
            return set()
        by_step: dict[int, list[int]] = {}
        for i, seg in enumerate(segments):
            if seg.step >= 0:
                by_step.setdefault(seg.step, []).append(i)
        frame_steps = [s for s, idx in sorted(by_step.items()) if any(segments[i].kind == "frame" for i in idx)]
        evict: set[int] = set()
        n_old = max(0, len(frame_steps) - max(1, self.window_frames))
        for step in frame_steps[:n_old]:
            if step >= current_step:
                break
            idx = by_step[step]
            if self._carries_text(segments, idx):
                evict.update(i for i in idx if segments[i].kind == "frame")
            else:
                evict.update(idx)
        if self.max_text_turns is not None:
            text_steps = [
                s
                for s, idx in sorted(by_step.items())
                if s < current_step
                and not any(i in evict for i in idx)
                and self._carries_text(segments, idx)
                and not any(segments[i].kind == "frame" for i in idx)
            ]
            excess = len(text_steps) - self.max_text_turns
            for step in text_steps[: max(0, excess)]:
                evict.update(by_step[step])
        return evict

    @staticmethod
    def _carries_text(segments: list[Segment], idx: list[int]) -> bool:
        return any(segments[i].kind == "text" for i in idx) or any(
            segments[i].kind == "reply" and not segments[i].silent for i in idx
        )


def rotate_keys(keys: torch.Tensor, delta: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Shift RoPE positions of cached keys by ``delta`` (one value per token).

    keys: (batch, heads, n, head_dim) already rotated at their old positions. A uniform shift
    is a plain RoPE rotation in every frequency, so it is the same for 1D RoPE and for M-RoPE
    (all three axes move together).
    """
    angles = delta.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    dims = 2 * inv_freq.shape[-1]  # partial RoPE (Qwen3.5: a quarter of the head) rotates the first dims only
    k = keys[..., :dims].to(torch.float64)
    half = dims // 2
    rotated = torch.cat([-k[..., half:], k[..., :half]], dim=-1)
    out = (k * cos + rotated * sin).to(keys.dtype)
    return torch.cat([out, keys[..., dims:]], dim=-1) if dims < keys.shape[-1] else out


@dataclass(frozen=True)
class Eviction:
    """What removing segments means for the cache: which cached tokens stay (``keep``, token indices in
    cache order) and by how much each kept token's position moves back (``delta``, <= 0)."""

    segments: list[Segment]  # the kept segments, positions compacted
    keep: torch.Tensor  # (kept tokens,) long
    delta: torch.Tensor  # (kept tokens,) long
    removed_span: int

    @property
    def moved(self) -> torch.Tensor:
        return self.delta != 0


def plan_eviction(segments: list[Segment], remove: set[int]) -> Eviction:
    """The eviction of ``remove`` (segment indices), independent of where the keys live (a session's own
    cache or a shared pool's slots: ``stream.kv``)."""
    keep_tok: list[torch.Tensor] = []
    shifts: list[torch.Tensor] = []
    kept: list[Segment] = []
    offset_tok = 0
    removed_span = 0
    for i, seg in enumerate(segments):
        if i in remove:
            removed_span += seg.pos_span
        else:
            keep_tok.append(torch.arange(offset_tok, offset_tok + seg.n_tokens))
            shifts.append(torch.full((seg.n_tokens,), -removed_span, dtype=torch.long))
            kept.append(
                Segment(
                    seg.kind,
                    seg.step,
                    seg.n_tokens,
                    seg.pos_start - removed_span,
                    seg.pos_end - removed_span,
                    seg.silent,
                )
            )
        offset_tok += seg.n_tokens
    empty = torch.zeros(0, dtype=torch.long)
    keep = torch.cat(keep_tok) if keep_tok else empty
    delta = torch.cat(shifts) if shifts else empty
    return Eviction(kept, keep, delta, removed_span)


def rerotate(keys: torch.Tensor, eviction: Eviction, inv_freq: torch.Tensor) -> torch.Tensor:
    """``keys`` (…, kept tokens, head_dim), already reduced to the kept tokens, with the moved ones rotated
    back by their ``delta`` (in place where they moved)."""
    moved = eviction.moved
    if bool(moved.any()):
        m = moved.to(keys.device)
        keys[..., m, :] = rotate_keys(keys[..., m, :], eviction.delta[moved].to(keys.device), inv_freq.to(keys.device))
    return keys


def evict_segments(
    cache, segments: list[Segment], remove: set[int], inv_freq: torch.Tensor
) -> tuple[list[Segment], int]:
    """Remove segments from every layer of a session's own cache and compact positions.
    Returns (segments, span removed)."""
    if not remove:
        return segments, 0
    eviction = plan_eviction(segments, remove)
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None:
            continue  # a linear-attention layer: its fixed-size state keeps what it absorbed (stream/hybrid.py)
        keys = layer.keys.index_select(-2, eviction.keep.to(layer.keys.device))
        values = layer.values.index_select(-2, eviction.keep.to(layer.values.device))
        layer.keys, layer.values = rerotate(keys, eviction, inv_freq), values
    return eviction.segments, eviction.removed_span


def cache_bytes(cache) -> int:
    """Bytes a session's cache holds: keys and values, and a hybrid model's linear-attention states."""
    total = 0
    for layer in cache.layers:
        if getattr(layer, "keys", None) is not None:
            total += layer.keys.nbytes + layer.values.nbytes
        for states in (getattr(layer, "conv_states", {}), getattr(layer, "recurrent_states", {})):
            total += sum(t.nbytes for t in states.values() if t is not None)
    return total
