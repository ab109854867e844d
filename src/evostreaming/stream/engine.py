"""BatchEngine: one GPU, many streams. Each tick advances every session that has work, in one packed
forward (``stream.pool``).

A session's step is a coroutine (``StreamingSession.step_events``) that yields the new tokens it needs
fed: a frame's turn (with the silence marker's head), then, when it responds, one reply token at a
time. A tick takes the waiting chunks of the engine's sessions up to a token budget
(``max_batch_tokens``), runs them as one forward (the vision tower once over all their frames, the
language model once over all their tokens), and hands each session its own logits. Sessions that are
replying and sessions that just got a frame share the same forward; new frames join at the next tick
(continuous batching). A session's results are those of the same session stepped alone (tested).

Families whose cache cannot be pooled (hybrid models: Qwen3.5, MiniCPM-V 4.6) and models with
sliding-window layers step serially inside the same loop, one forward per chunk.

Failure isolation: an error raised by one session's own step (a bad frame, a context overflow) fails
that step only. A packed forward that fails (out of memory, or a shape one session's input breaks)
is retried in halves, down to a single session, so only the culprit fails, and an out-of-memory
error halves the batch rather than failing anybody who fits.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from evostreaming.models.placement import to_model
from evostreaming.stream.pool import KVPool, packed
from evostreaming.stream.session import FeedChunk, StepEvents, StepResult, StreamingSession

DEFAULT_MAX_BATCH_TOKENS = 8192


@dataclass(eq=False)
class Ticket:
    """One step of one session in flight; ``result`` or ``error`` once ``done``."""

    session: StreamingSession
    events: StepEvents
    tag: object = None  # the caller's handle (a served session, a stream index)
    chunk: FeedChunk | None = None
    result: StepResult | None = None
    error: BaseException | None = None
    done: bool = False


def can_pool(model, session: StreamingSession) -> bool:
    """Whether the session's keys can live in a shared pool and be fed packed: full attention in every
    text layer (no linear-attention state, no sliding window)."""
    if session.kv.hybrid or getattr(session.adapter, "hybrid_memory", False):
        return False
    layer_types = getattr(model.config.get_text_config(), "layer_types", None) or []
    return all(t == "full_attention" for t in layer_types)


@dataclass
class EngineStats:
    forwards: int = 0  # model forwards run (packed or serial)
    packed_forwards: int = 0
    chunks: int = 0  # session chunks fed
    tokens: int = 0
    splits: int = 0  # packed forwards retried in halves (out of memory, or one session's bad input)
    failures: Counter = field(default_factory=Counter)


class BatchEngine:
    def __init__(self, model, *, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, capacity: int = 1024):
        if max_batch_tokens < 1:
            raise ValueError(f"--max-batch-tokens must be >= 1; got {max_batch_tokens}")
        self.model = model
        self.max_batch_tokens = max_batch_tokens
        self.pool = KVPool(model.config.get_text_config().num_hidden_layers, capacity)
        self.stats = EngineStats()
        self._active: list[Ticket] = []
        self._device = model.get_input_embeddings().weight.device

    # -- sessions ---------------------------------------------------------------------------------
    def attach(self, session: StreamingSession) -> StreamingSession:
        """Put a fresh session's keys in the engine's pool (when its family can pack); returns it."""
        if can_pool(self.model, session):
            session.use_pool(self.pool)
        return session

    def submit(
        self,
        session: StreamingSession,
        frame,
        t: float,
        user_text: str | None = None,
        *,
        tag: object = None,
        encoded_frame=None,
        on_decision: Callable | None = None,
        on_token: Callable | None = None,
    ) -> Ticket:
        """Start one step of ``session``; it advances with the next ticks."""
        if any(x.session is session and not x.done for x in self._active):
            raise RuntimeError("a session has one step in flight at a time")
        events = session.step_events(
            frame, t, user_text, encoded_frame=encoded_frame, on_decision=on_decision, on_token=on_token
        )
        ticket = Ticket(session, events, tag)
        self._active.append(ticket)
        self._advance(ticket, None)
        return ticket

    @property
    def busy(self) -> bool:
        return any(not t.done for t in self._active)

    def in_flight(self) -> list[Ticket]:
        """The steps submitted and not finished yet."""
        return [t for t in self._active if not t.done]

    def drain(self) -> list[Ticket]:
        """Tickets that finished at submission (an error before any forward) without a tick."""
        done = [t for t in self._active if t.done]
        self._active = [t for t in self._active if not t.done]
        return done

    # -- one tick: one packed forward (plus any serial families) ---------------------------------
    def tick(self) -> list[Ticket]:
        """Feed the waiting chunks (packed up to the token budget) once; returns the tickets finished."""
        waiting = [t for t in self._active if not t.done]
        pooled = [t for t in waiting if t.session.kv.pooled]
        batch, used = [], 0
        for t in pooled:
            if batch and used + t.chunk.n_tokens > self.max_batch_tokens:
                break
            batch.append(t)
            used += t.chunk.n_tokens
        if batch:
            self._run_packed(batch)
            # whoever waited for the budget goes first next time
            rest = [t for t in self._active if t not in batch]
            self._active = rest + batch
        for t in waiting:
            if not t.session.kv.pooled:
                self._run_serial(t)
        return self.drain()

    def run(self, jobs: Iterable[tuple]) -> list[StepResult | BaseException]:
        """Step several sessions once each, in lockstep: ``jobs`` of (session, frame, t, user_text);
        results (or each failed step's exception) in the same order."""
        tickets = [self.submit(*job) for job in jobs]
        while self.busy:
            self.tick()
        self.drain()
        return [t.result if t.error is None else t.error for t in tickets]

    # -- internals --------------------------------------------------------------------------------
    def _advance(self, ticket: Ticket, logits: torch.Tensor | None) -> None:
        try:
            ticket.chunk = next(ticket.events) if logits is None else ticket.events.send(logits)
        except StopIteration as done:
            ticket.result, ticket.done, ticket.chunk = done.value, True, None
        except Exception as exc:  # the session's own step failed: only this session hears of it
            self._fail(ticket, exc, rolled_back=True)

    def _fail(self, ticket: Ticket, exc: BaseException, rolled_back: bool = False) -> None:
        if not rolled_back and ticket.chunk is not None:
            ticket.session.rollback(ticket.chunk)
        ticket.events.close()
        ticket.error, ticket.done, ticket.chunk = exc, True, None
        self.stats.failures[type(exc).__name__] += 1

    def _run_serial(self, ticket: Ticket) -> None:
        try:
            logits = ticket.session._forward(ticket.chunk)  # rolls the session back itself on failure
        except Exception as exc:
            self._fail(ticket, exc, rolled_back=True)
            return
        self.stats.forwards += 1
        self.stats.chunks += 1
        self.stats.tokens += ticket.chunk.n_tokens
        self._advance(ticket, logits)

    def _run_packed(self, batch: list[Ticket]) -> None:
        try:
            rows = self._forward(batch)
        except Exception as exc:  # out of memory, or one session's input breaks the pack
            if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            self.stats.splits += 1
            half = len(batch) // 2
            self._run_packed(batch[:half])
            self._run_packed(batch[half:])
            return
        for ticket, logits in zip(batch, rows, strict=True):
            self._advance(ticket, logits)

    @torch.no_grad()
    def _forward(self, batch: list[Ticket]) -> list[torch.Tensor]:
        chunks = [t.chunk for t in batch]
        first = batch[0].session
        plan = self.pool.reserve([t.session.kv.sid for t in batch], [c.n_tokens for c in chunks])
        keep, offset = [], 0
        for c in chunks:
            keep.extend(range(offset + c.n_tokens - c.keep, offset + c.n_tokens))
            offset += c.n_tokens
        mm = first.adapter.merge_mm([c.mm for c in chunks])
        positions = first.adapter.forward_position_ids(torch.cat([c.positions for c in chunks], dim=1))
        try:
            with packed(self.model, self.pool, plan):
                out = self.model(
                    input_ids=torch.cat([c.input_ids for c in chunks]).unsqueeze(0).to(self._device),
                    position_ids=positions.to(self._device),
                    **{first._cache_kw: self.pool},
                    use_cache=True,
                    logits_to_keep=torch.tensor(keep, device=self._device),
                    **(to_model(self.model, mm) if mm else {}),
                )
        except BaseException:
            self.pool.release(plan)
            raise
        self.stats.forwards += 1
        self.stats.packed_forwards += 1
        self.stats.chunks += len(chunks)
        self.stats.tokens += offset
        return list(out.logits[0].split([c.keep for c in chunks]))


class EngineThread:
    """A ``BatchEngine`` driven from its own thread for callers on many threads (``eval run
    --batch-streams``: one thread per stream decodes its video and calls ``step``, which blocks until
    that session's step is done).

    Lockstep: a tick waits, up to ``fill_timeout_s``, until every attached session has its step in
    flight, so the packs are as full as the streams allow; a stream still decoding its next frame
    holds the others back at most that long."""

    def __init__(self, engine: BatchEngine, fill_timeout_s: float = 0.25):
        self.engine = engine
        self.fill_timeout_s = fill_timeout_s
        self._cond = threading.Condition()
        self._live = 0  # attached sessions whose stream is going on
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="evostreaming-engine", daemon=True)
        self._thread.start()

    def attach(self, session: StreamingSession) -> StreamingSession:
        with self._cond:
            self.engine.attach(session)
            self._live += 1
            self._cond.notify_all()
        return session

    def release(self, session: StreamingSession) -> None:
        """The stream is over: its slots go back and the others no longer wait for it."""
        with self._cond:
            session.close()
            self._live -= 1
            self._cond.notify_all()

    def step(self, session: StreamingSession, frame, t: float, user_text: str | None = None) -> StepResult:
        encoded = session.encode_frame(frame)  # on the caller's thread: the engine's only runs forwards
        with self._cond:
            ticket = self.engine.submit(session, frame, t, user_text, encoded_frame=encoded)
            self._cond.notify_all()
            while not ticket.done:
                self._cond.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()

    def _in_flight(self) -> int:
        return len(self.engine.in_flight())

    def _run(self) -> None:
        with self._cond:
            while not self._stop:
                if not self.engine.busy:
                    self._cond.wait()
                    continue
                deadline = time.monotonic() + self.fill_timeout_s
                while self._in_flight() < self._live and not self._stop:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self.engine.tick()
                self._cond.notify_all()
