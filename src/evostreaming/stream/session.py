"""StreamingSession: one VideoLLM watching a stream, one frame per step, with a persistent KV cache.

Conversation layout (one user/assistant exchange per step, in the family's own chat format):

    system prompt
    step k:  user[ frame_k (+ any user text that arrived since step k-1) ]  assistant[ reply_k ]

``reply_k`` is the silence marker or a response. Each step feeds only its new tokens; nothing is
re-encoded. Position ids are computed per segment by the family adapter so they equal those of
one offline forward over the whole conversation. Tokens that are generated speculatively and
not kept (the marker when the model decides to respond) are cropped from the cache.

A step is written once, as a coroutine (``step_events``): it yields the new tokens it needs fed
(``FeedChunk``) and receives their logits. ``step`` feeds them with the session's own forward; a
``BatchEngine`` (``stream.engine``) feeds the chunks of many sessions in one packed forward. For a
family whose cache can be cropped, the silence marker's head rides in the same forward as the frame,
so a silent frame costs one forward; it is cropped only when the model responds.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

from evostreaming.models import FamilyAdapter, adapter_for
from evostreaming.models.adapter import EncodedSegment
from evostreaming.models.placement import to_model
from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER, SilenceDecision, decide
from evostreaming.stream.kv import OwnKV, PooledKV
from evostreaming.stream.memory import MemoryPolicy, Segment, plan_eviction

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant watching a live video stream, one frame at a time. "
    "When the user's request needs an answer now, answer briefly. "
    "Otherwise reply exactly {marker}."
)


class ContextOverflowError(RuntimeError):
    pass


@dataclass
class StepResult:
    time: float
    action: str  # "silent" | "respond"
    text: str
    silence_prob: float
    n_tokens: int
    latency_s: float
    user_text: str | None = None
    cache_tokens: int = 0
    next_position: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Pending:
    kind: str
    step: int
    segment: EncodedSegment
    silent: bool = False


@dataclass
class FeedChunk:
    """One session's new tokens for one forward, and what to undo if that forward fails."""

    input_ids: torch.Tensor  # (n,)
    positions: torch.Tensor  # (P, n)
    mm: dict[str, torch.Tensor]  # image inputs of the chunk's frames ({} for text)
    keep: int  # logits wanted for the last ``keep`` tokens
    undo: tuple[int, int, int]  # segments, next position and kept inputs before the chunk
    parts: list = field(default_factory=list)  # the queued segments it holds (re-queued on rollback)

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[0])


StepEvents = Generator[FeedChunk, torch.Tensor, "StepResult"]


@dataclass
class SessionConfig:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    silence_marker: str = DEFAULT_SILENCE_MARKER
    silence_threshold: float | None = None
    max_new_tokens: int = 64
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)
    # visual tokens per frame (the paper trains at about 128); families with a fixed count ignore it
    visual_tokens_per_frame: int | None = 128

    def __post_init__(self) -> None:
        """Settings that cannot work raise ValueError, with the fix, before a model is touched."""
        if self.silence_threshold is not None and not 0.0 <= self.silence_threshold <= 1.0:
            raise ValueError(f"--silence-threshold is a probability in [0, 1]; got {self.silence_threshold}")
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1; got {self.max_new_tokens}")
        if not self.silence_marker:
            raise ValueError("--silence-marker must not be empty")
        if self.visual_tokens_per_frame is not None and self.visual_tokens_per_frame < 1:
            raise ValueError(f"--visual-tokens-per-frame must be >= 1; got {self.visual_tokens_per_frame}")


def cache_keyword(model) -> str:
    """The forward's name for the KV cache: transformers 5.24 renamed ``past_key_values`` to ``cache``
    (the old name warns, and goes in 5.40); earlier releases know only the old one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps with **kwargs
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class StreamingSession:
    def __init__(
        self,
        model,
        processor,
        adapter: FamilyAdapter | None = None,
        config: SessionConfig | None = None,
        *,
        keep_inputs: bool = False,
        speculate: bool = True,
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = config or SessionConfig()
        # the adapter is shared (one per loaded model) and read-only here: per-session settings such as
        # the frame budget are passed to its calls, never written on it
        self.adapter = adapter or adapter_for(model, processor)
        self.keep_inputs = keep_inputs  # keep ids/pixels of cached segments (for exactness checks)
        self.kv: OwnKV | PooledKV = OwnKV(model)
        # the marker's head fed with the frame (one forward per silent frame); off: today's two forwards
        self.speculate = speculate
        self._input_device = model.get_input_embeddings().weight.device
        self._cache_kw = cache_keyword(model)
        self.segments: list[Segment] = []
        self.segment_inputs: list[EncodedSegment] = []  # parallel to segments when keep_inputs
        self.next_pos = 0
        self.step_index = -1
        self.last_logits: torch.Tensor | None = None
        self.logit_log: list[torch.Tensor] = []  # (n, vocab) per forward when keep_inputs
        self.forwards = 0  # forwards fed so far (serial or packed): the cost model of docs/streaming.md
        self._pending: list[_Pending] = []
        marker_text = self.adapter.reply_text(self.config.silence_marker)
        self._marker_ids = self.tokenizer(marker_text, add_special_tokens=False)["input_ids"]
        if not self._marker_ids:
            raise ValueError("the silence marker must not be empty")
        self._eot = self.adapter.end_of_turn_ids(self.tokenizer)
        self._max_pos = self.adapter.max_positions(model)
        self._inv_freq = self.adapter.inv_freq(model) if self.config.memory.bounded else None
        prompt = self.config.system_prompt.replace("{marker}", self.config.silence_marker)
        if prompt:
            self._queue("system", -1, self.adapter.system(prompt))
        elif self.adapter.preamble():  # the template's default system turn (or BOS), as offline
            self._queue("system", -1, self.adapter.preamble())

    @classmethod
    def of(cls, loaded, config: SessionConfig | None = None, **kwargs) -> StreamingSession:
        """A session on a loaded model (``models.LoadedModel``), with its shared adapter."""
        return cls(loaded.model, loaded.processor, loaded.adapter, config, **kwargs)

    # -- where the keys live --------------------------------------------------------------------
    @property
    def cache(self):
        """The session's own transformers cache (None when its keys live in a shared pool)."""
        return self.kv.cache

    def use_pool(self, pool) -> None:
        """Move this (fresh) session's keys into ``pool``, shared with a ``BatchEngine``'s other sessions."""
        if self.kv.tokens() or self.segments:
            raise RuntimeError("a session joins a pool before its first forward")
        if self.kv.hybrid:
            raise ValueError(f"{self.adapter.family}: a hybrid model's cache cannot be pooled")
        self.kv = PooledKV(pool)

    def close(self) -> None:
        """Give the session's keys back (its pool slots); the session is not used afterwards."""
        self.kv.release()

    @property
    def cache_tokens(self) -> int:
        return self.kv.tokens()

    @property
    def cache_bytes(self) -> int:
        return self.kv.nbytes()

    # -- low level: queue text, prepare a chunk, feed it ----------------------------------------
    def encode_frame(self, frame) -> EncodedSegment:
        """A frame's segment (image processor and tokenizer), independent of the session's state: the
        server runs it where the frame arrives, off the inference thread, and passes it to ``step``."""
        image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
        return self.adapter.encode(self.processor, self.adapter.frame(), image, self.config.visual_tokens_per_frame)

    def _queue(
        self,
        kind: str,
        step: int,
        text: str | None = None,
        silent=False,
        ids: list[int] | None = None,
        segment: EncodedSegment | None = None,
    ) -> None:
        if segment is not None:
            seg = segment
        elif ids is not None:
            seg = EncodedSegment(torch.tensor(ids, dtype=torch.long), {})
        else:
            seg = self.adapter.encode(self.processor, text)
        if seg.input_ids.numel():
            self._pending.append(_Pending(kind, step, seg, silent))

    def _prepare(self, keep: int = 1) -> FeedChunk:
        """Take the pending segments as one chunk: positions assigned, segments recorded."""
        parts, self._pending = self._pending, []
        undo = (len(self.segments), self.next_pos, len(self.segment_inputs))
        ids, pos, mm = [], [], []
        for part in parts:
            p, end = self.adapter.positions(self.model, part.segment, self.next_pos)
            n = part.segment.input_ids.shape[0]
            self.segments.append(Segment(part.kind, part.step, n, self.next_pos, end, part.silent))
            if self.keep_inputs:
                self.segment_inputs.append(part.segment)
            self.next_pos = end
            ids.append(part.segment.input_ids)
            pos.append(p)
            mm.append(part.segment.mm_kwargs)
        chunk = FeedChunk(torch.cat(ids), torch.cat(pos, dim=1), self.adapter.merge_mm(mm), keep, undo, parts)
        if self.keep_inputs:
            chunk.keep = chunk.n_tokens
        if self.next_pos > self._max_pos:
            self.rollback(chunk)
            raise ContextOverflowError(
                f"stream reached position {self.next_pos}, beyond the model's {self._max_pos}; "
                "bound the memory with --memory-window SECONDS"
            )
        return chunk

    def rollback(self, chunk: FeedChunk) -> None:
        """Forget a chunk whose forward failed (its keys were never kept): segments and positions as
        before, what earlier steps left to feed (the system prompt, a turn's end) queued again, and
        the failed step's own pieces dropped, so the session goes on as if that step never came."""
        n_seg, pos, n_inputs = chunk.undo
        del self.segments[n_seg:]
        del self.segment_inputs[n_inputs:]
        self.next_pos = pos
        self._forget_step([*chunk.parts, *self._pending])

    def _forget_step(self, queued: list[_Pending]) -> None:
        step = self.step_index
        self._pending = [p for p in queued if p.step < step]
        if not any(seg.step == step for seg in self.segments):
            self.step_index -= 1  # nothing of the step is in the cache: its number is free again

    @torch.no_grad()
    def _forward(self, chunk: FeedChunk) -> torch.Tensor:
        """Feed one chunk with this session's own forward; logits of its last ``keep`` tokens."""
        # inputs go where the model's embeddings live (one GPU, or the first of a device_map);
        # pixels in the model's precision
        device = self._input_device
        mm_inputs = to_model(self.model, chunk.mm) if chunk.mm else {}  # text-only steps (reply tokens) skip it
        before = self.kv.tokens()
        try:
            out = self.model(
                input_ids=chunk.input_ids.unsqueeze(0).to(device),
                position_ids=self.adapter.forward_position_ids(chunk.positions).to(device),
                **{self._cache_kw: self.kv.cache},
                use_cache=True,
                logits_to_keep=chunk.keep,
                **mm_inputs,
            )
        except Exception:
            self.rollback(chunk)
            if not self.kv.hybrid and self.kv.tokens() > before:
                self.kv.cache.crop(before)  # layers written before the failure
            raise
        return out.logits[0]

    def absorb(self, chunk: FeedChunk, logits: torch.Tensor) -> torch.Tensor:
        """Take a fed chunk's logits (from either forward) into the session's state."""
        logits = logits.float()
        self.forwards += 1
        if self.keep_inputs:
            self.logit_log.append(logits)
        self.last_logits = logits[-1]
        return logits

    def _flush(self, keep: int = 1) -> torch.Tensor:
        """Feed all pending segments in one forward; returns logits of the last ``keep`` fed tokens
        (of all fed tokens when the session keeps its inputs)."""
        self._own_forward()
        chunk = self._prepare(keep)
        return self.absorb(chunk, self._forward(chunk))

    def _own_forward(self) -> None:
        if self.kv.pooled:
            raise RuntimeError("this session's keys live in a BatchEngine's pool: step it through the engine")

    def run_serially(self, events: Generator[FeedChunk, torch.Tensor, object]):
        """Drive a coroutine of this session (``step_events``...) with the session's own forward."""
        self._own_forward()
        try:
            chunk = next(events)
            while True:
                chunk = events.send(self._forward(chunk))
        except StopIteration as done:
            return done.value

    def _crop_last(self, saved=None) -> None:
        """Remove the last fed segment from the cache (speculative tokens); a hybrid model's linear
        layers get back the states ``saved`` before it (``stream.hybrid``)."""
        seg = self.segments.pop()
        if self.keep_inputs:
            self.segment_inputs.pop()
            last = self.logit_log.pop()[: -seg.n_tokens]  # the segment may have shared its forward
            if last.shape[0]:
                self.logit_log.append(last)
        self.kv.crop(seg.n_tokens, saved)
        self.next_pos = seg.pos_start

    # -- public API ---------------------------------------------------------------------------
    def _queue_user_turn(self, frame, user_text: str | None, encoded: EncodedSegment | None = None) -> int:
        self.step_index += 1
        step = self.step_index
        try:
            self._queue("open", step, self.adapter.user_open())
            self._queue("frame", step, segment=encoded if encoded is not None else self.encode_frame(frame))
            if user_text:
                self._queue("text", step, self.adapter.user_text(user_text))
            self._queue("prompt", step, self.adapter.assistant_open())
        except Exception:  # a frame the processor cannot read: the step never happened
            self._forget_step(self._pending)
            raise
        return step

    def push_frame(self, frame, user_text: str | None = None) -> torch.Tensor:
        """Append one step's user turn (frame + optional text) and return next-token logits."""
        self._queue_user_turn(frame, user_text)
        self._flush()
        return self.last_logits

    def _decision_events(self, step: int, first: torch.Tensor, head_rows: torch.Tensor | None):
        """Score the silence marker (its head's rows already fed when ``head_rows`` is given, else fed
        now) and keep it in the cache if silent, crop it if not."""
        head = self._marker_ids[:-1]
        saved = None
        if head and head_rows is None:
            # a hybrid model's recurrent state cannot be cropped: save it before the speculative tokens
            saved = self.kv.snapshot()
            self._queue("reply", step, ids=head, silent=True)
            head_rows = self.absorb(chunk := self._prepare(keep=len(head)), (yield chunk))[-len(head) :]
        rows = [first] if not head else [first.view(1, -1), head_rows]
        marker_logits = torch.cat([r.view(-1, r.shape[-1]) for r in rows])
        decision = decide(marker_logits, self._marker_ids, self.config.silence_threshold)
        if decision.silent:
            self._queue("reply", step, ids=self._marker_ids[-1:], silent=True)
            self._queue("close", step, self.adapter.assistant_close())
        else:
            if head:
                self._crop_last(saved)
            self.last_logits = first
        return decision

    def decide(self) -> SilenceDecision:
        """Score the silence marker after ``push_frame`` and keep it in the cache if silent."""
        return self.run_serially(self._decision_events(self.step_index, self.last_logits, None))

    def _reply_events(self, ban_marker_start: bool, on_token=None):
        step = self.step_index
        logits = self.last_logits.clone()
        if ban_marker_start:
            logits[self._marker_ids[0]] = float("-inf")
        out: list[int] = []
        for _ in range(self.config.max_new_tokens):
            tok = int(logits.argmax())
            if tok in self._eot:
                break
            out.append(tok)
            if on_token is not None:  # e.g. the server streams the reply as it is generated
                on_token(out)
            self._queue("reply", step, ids=[tok])
            logits = self.absorb(chunk := self._prepare(), (yield chunk))[-1]
        self._merge_reply_segments(step)
        self._queue("close", step, self.adapter.assistant_close())
        return out

    @torch.no_grad()
    def generate_reply(self, ban_marker_start: bool = False, on_token=None) -> list[int]:
        """Greedy response after a 'respond' decision; leaves the turn end pending.

        A hand-written loop rather than ``generate()`` because positions must continue from the
        session's own (M-RoPE) counter, which ``generate()`` would recompute from scratch.
        """
        return self.run_serially(self._reply_events(ban_marker_start, on_token))

    def _merge_reply_segments(self, step: int) -> None:
        # Generated tokens were fed one by one; store them as one segment (one eviction unit).
        tail = []
        while self.segments and self.segments[-1].kind == "reply" and self.segments[-1].step == step:
            tail.append(self.segments.pop())
        if not tail:
            return
        tail.reverse()
        merged = Segment("reply", step, sum(s.n_tokens for s in tail), tail[0].pos_start, tail[-1].pos_end)
        self.segments.append(merged)
        if self.keep_inputs:
            parts = self.segment_inputs[-len(tail) :]
            del self.segment_inputs[-len(tail) :]
            self.segment_inputs.append(EncodedSegment(torch.cat([p.input_ids for p in parts]), {}))

    def append_reply(self, text: str) -> None:
        """Teacher-force an assistant reply for the current step (replaying a known conversation)."""
        step = self.step_index
        silent = text == self.config.silence_marker
        self._queue("reply", step, self.adapter.reply_text(text), silent=silent)
        self._queue("close", step, self.adapter.assistant_close())

    def sync(self) -> None:
        """Feed any pending tokens (a reply's turn end) now instead of with the next step."""
        if self._pending:
            self._flush()

    def step_events(
        self,
        frame,
        t: float,
        user_text: str | None = None,
        *,
        encoded_frame: EncodedSegment | None = None,
        on_decision: Callable[[SilenceDecision], None] | None = None,
        on_token: Callable[[list[int]], None] | None = None,
    ) -> StepEvents:
        """One stream step as a coroutine: yields the chunks to feed, receives their logits, returns the
        ``StepResult``. ``on_decision`` hears the decision before any reply token, ``on_token`` each token."""
        start = time.perf_counter()
        step = self._queue_user_turn(frame, user_text, encoded_frame)
        head = self._marker_ids[:-1]
        speculate = bool(head) and self.speculate and not self.kv.hybrid
        if speculate:  # the marker's head in the frame's forward; cropped below if the model responds
            self._queue("reply", step, ids=head, silent=True)
        logits = self.absorb(chunk := self._prepare(keep=1 + len(head) if speculate else 1), (yield chunk))
        first = logits[-1 - len(head)] if speculate else logits[-1]
        head_rows = logits[-len(head) :] if speculate else None
        decision = yield from self._decision_events(step, first, head_rows)
        if on_decision is not None:
            on_decision(decision)
        text, ids = "", []
        if not decision.silent:
            ids = yield from self._reply_events(decision.greedy_silent, on_token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        self.enforce_memory()
        return StepResult(
            time=t,
            action="silent" if decision.silent else "respond",
            text=text,
            silence_prob=decision.silence_prob,
            n_tokens=len(ids),
            latency_s=time.perf_counter() - start,
            user_text=user_text,
            cache_tokens=self.cache_tokens,
            next_position=self.next_pos,
        )

    @torch.no_grad()
    def step(self, frame, t: float, user_text: str | None = None, on_token=None, **hooks) -> StepResult:
        """One stream step: see the frame (and any new user text), then stay silent or respond."""
        return self.run_serially(self.step_events(frame, t, user_text, on_token=on_token, **hooks))

    def enforce_memory(self) -> None:
        """Apply the memory policy to everything already in the cache (before the next step)."""
        policy = self.config.memory
        if not policy.bounded:
            return
        remove = policy.select(self.segments, self.step_index)
        if not remove:
            return
        if self.keep_inputs:
            self.segment_inputs = [s for i, s in enumerate(self.segment_inputs) if i not in remove]
            self.logit_log = []  # indices no longer line up after eviction
        eviction = plan_eviction(self.segments, remove)
        self.kv.evict(eviction, self._inv_freq)
        self.segments = eviction.segments
        self.next_pos -= eviction.removed_span
        # Pending segments were positioned lazily, so they simply continue from next_pos.

    # -- reference path -------------------------------------------------------------------------
    def cached_inputs(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Token ids and image tensors of everything in the cache (needs ``keep_inputs=True``)."""
        if not self.keep_inputs:
            raise RuntimeError("create the session with keep_inputs=True to replay it offline")
        ids = torch.cat([s.input_ids for s in self.segment_inputs])
        mm = self.adapter.merge_mm([s.mm_kwargs for s in self.segment_inputs])
        return ids, mm
