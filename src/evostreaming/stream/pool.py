"""One key/value pool for many sessions, and the packed forward that advances them all at once.

``KVPool`` is a transformers ``Cache``: per layer, one preallocated key tensor and one value tensor
(``(1, kv_heads, capacity, head_dim)``); each session owns a list of slots in it, in its own cache order.
Cropping a session truncates its list, evicting drops slots and re-rotates the kept keys in place (the
same rotation as a session's own cache: ``stream.memory``), closing a session frees its slots.

A packed forward puts the new tokens of several sessions side by side in one sequence (batch 1), each
with its own position ids (M-RoPE included) and its images in the same order, so the model's vision
tower runs once over every session's frames and its language model once over every new token. Two
things make that exact:

* the cache's ``update`` writes each session's new keys into its new slots and returns the keys of
  every session of the pack, laid end to end (``gather``);
* the attention, registered with transformers' ``AttentionInterface`` as ``evostreaming_packed`` and
  switched on for the text model only while a packed forward runs, lets each session's queries see
  only its own keys, causally (bottom-right aligned: the new tokens are the last ones of each
  session). On CUDA in half precision it is one variable-length kernel call
  (``torch.nn.attention.varlen``); elsewhere, and as the reference, one SDPA call per session.

Logits are computed only at the rows each session asked for (``logits_to_keep`` as indices).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from evostreaming.stream.memory import Eviction, rerotate

ATTENTION_NAME = "evostreaming_packed"
_ACTIVE = threading.local()  # the plan of the packed forward running on this thread


@dataclass
class PackPlan:
    """Where one packed forward's tokens go: per session, how many new tokens (``q_lens``) and how many
    keys it attends to once they are written (``k_lens``); the pool slots to write and to gather."""

    sids: list[int]
    q_lens: list[int]
    k_lens: list[int]
    past: list[int]  # each session's slot count before the forward (to roll back)
    write: torch.Tensor
    gather: torch.Tensor
    _masks: dict = field(default_factory=dict)

    def masks(self, device) -> list[torch.Tensor | None]:
        """Each session's causal mask, built once per forward (every layer reuses them): query j sits at
        cache position k_len - q_len + j and sees every key up to it; a single query sees all its keys."""
        if device not in self._masks:
            self._masks[device] = [
                None
                if nq == 1
                else (torch.arange(nk, device=device)[None, :] <= (nk - nq + torch.arange(nq, device=device))[:, None])[
                    None, None
                ]
                for nq, nk in zip(self.q_lens, self.k_lens, strict=True)
            ]
        return self._masks[device]

    def cumulative(self, lens: list[int], device) -> torch.Tensor:
        """Cumulative lengths for the variable-length kernel, built once per forward (layers reuse them)."""
        key = (id(lens), device)
        if key not in self._masks:
            self._masks[key] = torch.tensor(
                [0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device
            )
        return self._masks[key]


class PoolLayer(CacheLayerMixin):
    """One layer's keys and values in the pool (allocated on the first write, then grown by doubling)."""

    is_compileable = False
    is_croppable = False

    def __init__(self, pool: KVPool):
        super().__init__()
        self.pool = pool

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        cap = self.pool.capacity
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_zeros((1, key_states.shape[1], cap, key_states.shape[-1]))
        self.values = value_states.new_zeros((1, value_states.shape[1], cap, value_states.shape[-1]))
        self.is_initialized = True

    def grow(self, capacity: int) -> None:
        if not self.is_initialized or self.keys.shape[2] >= capacity:
            return
        extra = capacity - self.keys.shape[2]
        self.keys = torch.cat([self.keys, self.keys.new_zeros((*self.keys.shape[:2], extra, self.keys.shape[3]))], 2)
        self.values = torch.cat(
            [self.values, self.values.new_zeros((*self.values.shape[:2], extra, self.values.shape[3]))], 2
        )

    def update(self, key_states, value_states, *args, **kwargs):
        plan = self.pool.plan
        if plan is None:
            raise RuntimeError("a KVPool is written only inside a packed forward (stream.engine)")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.grow(self.pool.capacity)
        write = plan.write.to(self.keys.device)
        self.keys.index_copy_(2, write, key_states.to(self.keys.dtype))
        self.values.index_copy_(2, write, value_states.to(self.values.dtype))
        gather = plan.gather.to(self.keys.device)
        return self.keys.index_select(2, gather), self.values.index_select(2, gather)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        plan = self.pool.plan
        return sum(plan.past) if plan is not None else 0

    def get_max_length(self) -> int:
        return -1


class KVPool(Cache):
    """Keys and values of many sessions in one tensor per layer; a session is a list of slots."""

    def __init__(self, num_layers: int, capacity: int = 1024):
        super().__init__(layers=[])
        self.layers = [PoolLayer(self) for _ in range(num_layers)]
        self.capacity = capacity
        self._free: list[int] = list(range(capacity - 1, -1, -1))  # a stack: low slots first
        self._slots: dict[int, torch.Tensor] = {}
        self._ids = 0
        self.plan: PackPlan | None = None

    # -- sessions -------------------------------------------------------------------------------
    def open(self) -> int:
        self._ids += 1
        self._slots[self._ids] = torch.zeros(0, dtype=torch.long)
        return self._ids

    def close(self, sid: int) -> None:
        slots = self._slots.pop(sid, None)
        if slots is not None:
            self._free.extend(slots.flip(0).tolist())

    def length(self, sid: int) -> int:
        slots = self._slots.get(sid)  # a closed session holds nothing
        return 0 if slots is None else int(slots.numel())

    def slots(self, sid: int) -> torch.Tensor:
        return self._slots[sid]

    def crop(self, sid: int, n: int) -> None:
        """Drop the session's last ``n`` tokens (speculative ones)."""
        slots = self._slots[sid]
        self._slots[sid] = slots[: slots.numel() - n]
        self._free.extend(slots[slots.numel() - n :].flip(0).tolist())

    def evict(self, sid: int, eviction: Eviction, inv_freq: torch.Tensor) -> None:
        """Keep only ``eviction.keep`` of the session's tokens and re-rotate the moved keys in place."""
        slots = self._slots[sid]
        kept = slots.index_select(0, eviction.keep)
        gone = torch.ones(slots.numel(), dtype=torch.bool)
        gone[eviction.keep] = False
        self._free.extend(slots[gone].tolist())
        self._slots[sid] = kept
        if not bool(eviction.moved.any()):
            return
        for layer in self.layers:
            if not layer.is_initialized:
                continue
            idx = kept.to(layer.keys.device)
            layer.keys.index_copy_(2, idx, rerotate(layer.keys.index_select(2, idx), eviction, inv_freq))

    def nbytes(self, sid: int) -> int:
        n = self.length(sid)
        return sum(
            n * (layer.keys[0, :, 0].nbytes + layer.values[0, :, 0].nbytes)
            for layer in self.layers
            if layer.is_initialized
        )

    def gather_layer(self, sid: int, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A session's keys and values of one layer, in cache order (tests, exactness checks)."""
        layer = self.layers[layer_idx]
        idx = self._slots[sid].to(layer.keys.device)
        return layer.keys.index_select(2, idx), layer.values.index_select(2, idx)

    # -- a packed forward -----------------------------------------------------------------------
    def reserve(self, sids: list[int], q_lens: list[int]) -> PackPlan:
        """Give every session of a pack its new slots (growing the pool when full)."""
        need = sum(q_lens)
        if need > len(self._free):
            new_cap = self.capacity
            while new_cap - (self.capacity - len(self._free)) < need:
                new_cap *= 2
            self._free = list(range(new_cap - 1, self.capacity - 1, -1)) + self._free
            self.capacity = new_cap
            for layer in self.layers:
                layer.grow(new_cap)
        write, gather, past, k_lens = [], [], [], []
        for sid, n in zip(sids, q_lens, strict=True):
            new = torch.tensor([self._free.pop() for _ in range(n)], dtype=torch.long)
            past.append(self.length(sid))
            self._slots[sid] = torch.cat([self._slots[sid], new])
            write.append(new)
            gather.append(self._slots[sid])
            k_lens.append(self.length(sid))
        return PackPlan(list(sids), list(q_lens), k_lens, past, torch.cat(write), torch.cat(gather))

    def release(self, plan: PackPlan) -> None:
        """Undo ``reserve`` (a forward that failed): each session keeps exactly its old slots."""
        for sid, old in zip(plan.sids, plan.past, strict=True):
            if sid in self._slots:
                self.crop(sid, self.length(sid) - old)

    # the Cache API transformers' models call
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].get_seq_length() if self.layers else 0


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Each session's queries attend to its own keys only, causally; query (1, H, Tq, D), key and
    value (1, H_kv, Tk, D) laid end to end by session. Returns (1, Tq, H, D), as transformers expects."""
    plan: PackPlan | None = getattr(_ACTIVE, "plan", None)
    if plan is None:
        raise RuntimeError(f"the {ATTENTION_NAME} attention runs only inside a packed forward (stream.engine)")
    if query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and _varlen() is not None:
        return _varlen_attention(module, query, key, value, plan, scaling), None
    if len(plan.q_lens) == 1:  # one session: its keys are all the keys
        o, _ = sdpa_attention_forward(
            module, query, key, value, plan.masks(query.device)[0], dropout=0.0, scaling=scaling, is_causal=False
        )
        return o, None
    out = query.new_empty(query.shape[0], query.shape[2], query.shape[1], query.shape[3])
    q0 = k0 = 0
    for nq, nk, mask in zip(plan.q_lens, plan.k_lens, plan.masks(query.device), strict=True):
        q = query[:, :, q0 : q0 + nq]
        k, v = key[:, :, k0 : k0 + nk], value[:, :, k0 : k0 + nk]
        o, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=scaling, is_causal=False)
        out[:, q0 : q0 + nq] = o
        q0, k0 = q0 + nq, k0 + nk
    return out, None


def _varlen():
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch < 2.9
        return None
    return varlen_attn


def _varlen_attention(module, query, key, value, plan: PackPlan, scaling) -> torch.Tensor:
    q = query[0].transpose(0, 1)  # (Tq, H, D)
    k, v = key[0].transpose(0, 1), value[0].transpose(0, 1)
    out = _varlen()(
        q,
        k,
        v,
        plan.cumulative(plan.q_lens, q.device),
        plan.cumulative(plan.k_lens, q.device),
        max(plan.q_lens),
        max(plan.k_lens),
        scale=scaling,
        window_size=(-1, 0),  # causal, aligned at the end of each session's keys
        enable_gqa=k.shape[1] != q.shape[1],
    )
    return out.unsqueeze(0)


AttentionInterface.register(ATTENTION_NAME, packed_attention)


@contextmanager
def packed(model, pool: KVPool, plan: PackPlan):
    """Run the text model's attention packed (``plan``) for the duration of one forward, then restore it."""
    text_config = model.config.get_text_config()
    before = text_config._attn_implementation
    _ACTIVE.plan = pool.plan = plan
    text_config._attn_implementation_internal = ATTENTION_NAME
    try:
        yield
    finally:
        text_config._attn_implementation_internal = before
        _ACTIVE.plan = pool.plan = None
