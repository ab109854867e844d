"""KV caches of hybrid models (Qwen3.5, MiniCPM-V 4.6: linear-attention layers beside full-attention
ones): undoing speculative tokens and what bounded memory can remove.

A linear-attention layer keeps a short convolution window and a recurrent state of fixed size instead
of keys and values. transformers can roll back the convolution window (``activate_past_recording``)
but not the recurrent state, so the session saves both before a speculative forward (the silence
marker's head) and copies them back to undo it; full-attention layers are cropped as usual. Eviction
touches the full-attention layers only: a recurrent state has absorbed every frame it saw, it is
constant-size, and nothing can take a frame back out of it (docs/streaming.md, "hybrid models").
"""

from __future__ import annotations

import torch
from transformers.cache_utils import LinearAttentionCacheLayerMixin

LinearState = list[tuple[int, dict[int, torch.Tensor | None], dict[int, torch.Tensor | None]]]


def is_linear(layer) -> bool:
    return isinstance(layer, LinearAttentionCacheLayerMixin)


def has_kv(layer) -> bool:
    return getattr(layer, "keys", None) is not None


def is_hybrid(cache) -> bool:
    return any(is_linear(layer) for layer in cache.layers)


def snapshot(cache) -> LinearState:
    """Copies of every linear layer's convolution and recurrent states."""

    def copy(states: dict) -> dict:
        return {i: None if t is None else t.clone() for i, t in states.items()}

    return [
        (i, copy(layer.conv_states), copy(layer.recurrent_states))
        for i, layer in enumerate(cache.layers)
        if is_linear(layer)
    ]


def restore(cache, saved: LinearState) -> None:
    """Put the saved states back in place (``copy_``: the tensors keep their addresses)."""
    for i, conv, recurrent in saved:
        layer = cache.layers[i]
        for states, old in ((layer.conv_states, conv), (layer.recurrent_states, recurrent)):
            for k, t in old.items():
                if t is not None and states[k] is not None and states[k].shape == t.shape:
                    states[k].copy_(t)
                else:
                    states[k] = t


def crop(cache, n_tokens: int, saved: LinearState | None) -> None:
    """Remove the last ``n_tokens``: cropped from keys and values, restored in linear layers."""
    if saved is None:
        cache.crop(-n_tokens)
        return
    for layer in cache.layers:
        if has_kv(layer):
            layer.keys = layer.keys[..., :-n_tokens, :]
            layer.values = layer.values[..., :-n_tokens, :]
    restore(cache, saved)
