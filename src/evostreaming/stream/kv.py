"""Where a session's keys and values live, behind one small interface the session talks to.

``OwnKV``: the session's own transformers cache (a ``DynamicCache``; a hybrid model's linear-attention
states included), stepped by the session's own forward. ``PooledKV``: the session's slots in a
``KVPool`` shared by the sessions of a ``BatchEngine``, stepped by packed forwards. Both crop speculative
tokens and evict segments (``stream.memory.plan_eviction``) with the same re-rotation, so a session's
results do not depend on which it uses.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from evostreaming.stream import hybrid
from evostreaming.stream.memory import Eviction, cache_bytes, rerotate
from evostreaming.stream.pool import KVPool


class OwnKV:
    pooled = False

    def __init__(self, model):
        self.cache = DynamicCache(config=model.config)

    @property
    def hybrid(self) -> bool:
        return hybrid.is_hybrid(self.cache)

    def tokens(self) -> int:
        # the keys of a full-attention layer: a hybrid cache's own count may follow a linear layer,
        # which eviction does not shorten (transformers 5.25 counts that way)
        for layer in self.cache.layers:
            if hybrid.has_kv(layer):
                return int(layer.keys.shape[-2])
        return self.cache.get_seq_length()

    def nbytes(self) -> int:
        return cache_bytes(self.cache)

    def snapshot(self):
        """What undoing a speculative forward needs beyond cropping (a hybrid model's linear states)."""
        return hybrid.snapshot(self.cache) if self.hybrid else None

    def crop(self, n_tokens: int, saved=None) -> None:
        hybrid.crop(self.cache, n_tokens, saved)

    def evict(self, eviction: Eviction, inv_freq: torch.Tensor) -> None:
        for layer in self.cache.layers:
            if not hybrid.has_kv(layer):
                continue  # a linear-attention layer keeps what it absorbed (stream/hybrid.py)
            keep = eviction.keep.to(layer.keys.device)
            layer.keys = rerotate(layer.keys.index_select(-2, keep), eviction, inv_freq)
            layer.values = layer.values.index_select(-2, keep)

    def release(self) -> None:
        self.cache = DynamicCache()


class PooledKV:
    pooled = True
    hybrid = False  # hybrid models never pool (their linear states are per session and not croppable)

    def __init__(self, pool: KVPool):
        self.pool = pool
        self.sid = pool.open()
        self.cache = None  # no per-session transformers cache: the pool is the cache

    def tokens(self) -> int:
        return self.pool.length(self.sid)

    def nbytes(self) -> int:
        return self.pool.nbytes(self.sid)

    def snapshot(self):
        return None

    def crop(self, n_tokens: int, saved=None) -> None:
        self.pool.crop(self.sid, n_tokens)

    def evict(self, eviction: Eviction, inv_freq: torch.Tensor) -> None:
        self.pool.evict(self.sid, eviction, inv_freq)

    def release(self) -> None:
        self.pool.close(self.sid)
