"""StreamingSession: one VideoLLM watching a stream, one frame per step, with a persistent KV cache.

Conversation layout (one user/assistant exchange per step, in the family's own chat format):

    system prompt
    step k:  user[ frame_k (+ any user text that arrived since step k-1) ]  assistant[ reply_k ]

``reply_k`` is the silence marker or a response. Each step feeds only its new tokens; nothing is
re-encoded. Position ids are computed per segment by the family adapter so they equal those of
one offline forward over the whole conversation. Tokens that are generated speculatively and
not kept (the marker when the model decides to respond) are cropped from the cache.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image
from transformers import DynamicCache

from evostreaming.models import FamilyAdapter, adapter_for
from evostreaming.models.adapter import EncodedSegment
from evostreaming.models.placement import to_model
from evostreaming.stream import hybrid
from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER, SilenceDecision, decide
from evostreaming.stream.memory import MemoryPolicy, Segment, evict_segments

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
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = config or SessionConfig()
        self.adapter = adapter or adapter_for(model, processor)
        self.adapter.visual_tokens = self.config.visual_tokens_per_frame
        self.keep_inputs = keep_inputs  # keep ids/pixels of cached segments (for exactness checks)
        self.cache = DynamicCache(config=model.config)
        self._input_device = model.get_input_embeddings().weight.device
        self._cache_kw = cache_keyword(model)
        self.segments: list[Segment] = []
        self.segment_inputs: list[EncodedSegment] = []  # parallel to segments when keep_inputs
        self.next_pos = 0
        self.step_index = -1
        self.last_logits: torch.Tensor | None = None
        self.logit_log: list[torch.Tensor] = []  # (n, vocab) per forward when keep_inputs
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

    # -- low level: queue text, feed a chunk --------------------------------------------------
    def _queue(
        self, kind: str, step: int, text: str | None = None, image=None, silent=False, ids: list[int] | None = None
    ) -> None:
        if ids is not None:
            seg = EncodedSegment(torch.tensor(ids, dtype=torch.long), {})
        else:
            seg = self.adapter.encode(self.processor, text, image)
        if seg.input_ids.numel():
            self._pending.append(_Pending(kind, step, seg, silent))

    @torch.no_grad()
    def _flush(self, keep: int = 1) -> torch.Tensor:
        """Feed all pending segments in one forward; returns logits of the last ``keep`` fed tokens
        (of all fed tokens when the session keeps its inputs)."""
        parts, self._pending = self._pending, []
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
        if self.next_pos > self._max_pos:
            raise ContextOverflowError(
                f"stream reached position {self.next_pos}, beyond the model's {self._max_pos}; "
                "bound the memory with --memory-window SECONDS"
            )
        # inputs go where the model's embeddings live (one GPU, or the first of a device_map);
        # pixels in the model's precision
        device = self._input_device
        merged = self.adapter.merge_mm(mm)
        mm_inputs = to_model(self.model, merged) if merged else {}  # text-only steps (reply tokens) skip it
        out = self.model(
            input_ids=torch.cat(ids).unsqueeze(0).to(device),
            position_ids=self.adapter.forward_position_ids(torch.cat(pos, dim=1)).to(device),
            **{self._cache_kw: self.cache},
            use_cache=True,
            logits_to_keep=0 if self.keep_inputs else keep,
            **mm_inputs,
        )
        logits = out.logits[0].float()
        if self.keep_inputs:
            self.logit_log.append(logits)
        self.last_logits = logits[-1]
        return logits

    def _crop_last(self, saved=None) -> None:
        """Remove the last fed segment from the cache (speculative tokens); a hybrid model's linear
        layers get back the states ``saved`` before it (``stream.hybrid``)."""
        seg = self.segments.pop()
        if self.keep_inputs:
            self.segment_inputs.pop()
            self.logit_log.pop()
        hybrid.crop(self.cache, seg.n_tokens, saved)
        self.next_pos = seg.pos_start

    # -- public API ---------------------------------------------------------------------------
    @property
    def cache_tokens(self) -> int:
        return self.cache.get_seq_length()

    def push_frame(self, frame, user_text: str | None = None) -> torch.Tensor:
        """Append one step's user turn (frame + optional text) and return next-token logits."""
        self.step_index += 1
        step = self.step_index
        image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
        self._queue("open", step, self.adapter.user_open())
        self._queue("frame", step, self.adapter.frame(), image=image)
        if user_text:
            self._queue("text", step, self.adapter.user_text(user_text))
        self._queue("prompt", step, self.adapter.assistant_open())
        self._flush()
        return self.last_logits

    def decide(self) -> SilenceDecision:
        """Score the silence marker after ``push_frame`` and keep it in the cache if silent."""
        step = self.step_index
        first = self.last_logits
        head = self._marker_ids[:-1]
        rows = [first]
        saved = None
        if head:
            # a hybrid model's recurrent state cannot be cropped: save it before the speculative tokens
            saved = hybrid.snapshot(self.cache) if hybrid.is_hybrid(self.cache) else None
            self._queue("reply", step, ids=head, silent=True)
            rows.append(self._flush(keep=len(head))[-len(head) :])
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

    @torch.no_grad()
    def generate_reply(self, ban_marker_start: bool = False, on_token=None) -> list[int]:
        """Greedy response after a 'respond' decision; leaves the turn end pending.

        A hand-written loop rather than ``generate()`` because positions must continue from the
        session's own (M-RoPE) counter, which ``generate()`` would recompute from scratch.
        """
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
            logits = self._flush()[-1]
        self._merge_reply_segments(step)
        self._queue("close", step, self.adapter.assistant_close())
        return out

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

    def step(self, frame, t: float, user_text: str | None = None, on_token=None) -> StepResult:
        """One stream step: see the frame (and any new user text), then stay silent or respond."""
        start = time.perf_counter()
        self.push_frame(frame, user_text)
        decision = self.decide()
        text, n_tok = "", 0
        if not decision.silent:
            ids = self.generate_reply(ban_marker_start=decision.greedy_silent, on_token=on_token)
            n_tok = len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        self.enforce_memory()
        return StepResult(
            time=t,
            action="silent" if decision.silent else "respond",
            text=text,
            silence_prob=decision.silence_prob,
            n_tokens=n_tok,
            latency_s=time.perf_counter() - start,
            user_text=user_text,
            cache_tokens=self.cache_tokens,
            next_position=self.next_pos,
        )

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
        self.segments, span = evict_segments(self.cache, self.segments, remove, self._inv_freq)
        self.next_pos -= span
        # Pending segments were positioned lazily, so they simply continue from next_pos.

    # -- reference path -------------------------------------------------------------------------
    def cached_inputs(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Token ids and image tensors of everything in the cache (needs ``keep_inputs=True``)."""
        if not self.keep_inputs:
            raise RuntimeError("create the session with keep_inputs=True to replay it offline")
        ids = torch.cat([s.input_ids for s in self.segment_inputs])
        mm = self.adapter.merge_mm([s.mm_kwargs for s in self.segment_inputs])
        return ids, mm
