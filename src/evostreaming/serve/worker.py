"""Served sessions and the one inference worker that steps them.

Every WebSocket owns a ``ServedSession``: its own ``StreamingSession`` (history, its slots in the KV
pool), a one-frame slot (the newest frame wins; the one it replaces is reported dropped as
``superseded``), the questions waiting for the next frame, and an asyncio queue of outgoing events.
The model's weights are shared read-only.

A frame is decoded and run through the image processor where it arrives, in a small thread pool
(``FrameJob.prepared``), so the inference thread only runs forwards. The single worker thread then
batches continuously (``stream.engine``): each tick it admits the sessions whose next frame is ready
and runs one packed forward for every session in flight (new frames and replies being generated
together). With ``batch=False`` it steps one session at a time, round-robin (the old worker, kept to
measure against).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from evostreaming.serve.protocol import (
    ErrorEvent,
    FrameDecision,
    FrameDropped,
    ResponseCreated,
    ResponseDone,
    ResponseTextDelta,
    SessionStats,
)
from evostreaming.stream.engine import BatchEngine, Ticket
from evostreaming.stream.session import StreamingSession


class FrameTooLarge(ValueError):
    """A frame over the server's pixel cap (``--max-frame-pixels``), caught from its header."""


def decode_frame(data: bytes, max_pixels: int) -> Image.Image:
    """The frame's RGB image; its size is read from the header and checked before any pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
        w, h = image.size
        if w * h > max_pixels:
            raise FrameTooLarge(f"a {w}x{h} frame; the server's limit is {max_pixels} pixels (--max-frame-pixels)")
        image.load()
    except Image.DecompressionBombError as exc:  # PIL's own cap, far above ours: same answer
        raise FrameTooLarge(f"{exc}; the server's limit is {max_pixels} pixels") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a JPEG/PNG/WebP image ({exc})") from exc
    return image.convert("RGB")


@dataclass
class FrameJob:
    seq: int
    time: float
    image: Image.Image | None
    questions: list[str] = field(default_factory=list)  # asked before this frame arrived (causal binding)
    # the frame decoded and encoded off the inference thread: (image, EncodedSegment)
    prepared: Future | None = None
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class RateGate:
    """A session's frame rate limit as a token bucket: on average at most ``max_fps`` frames per second,
    with ``burst`` frames of slack, so a client paced exactly at the limit is not dropped when network or
    event-loop jitter brings two of its frames closer together than 1/max_fps."""

    max_fps: float
    burst: float = 2.0
    tokens: float | None = None
    at: float = 0.0

    def admit(self, now: float) -> bool:
        if self.tokens is None:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.max_fps)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(eq=False)  # identity: sessions live in sets
class ServedSession:
    session: StreamingSession
    loop: asyncio.AbstractEventLoop
    id: str = field(default_factory=lambda: "sess_" + uuid.uuid4().hex[:12])
    out: asyncio.Queue = field(default_factory=asyncio.Queue)
    pending: FrameJob | None = None
    questions: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    rate: RateGate | None = None  # made at the first frame, from the server's max_fps
    stats: Counter = field(default_factory=Counter)
    closed: bool = False

    def emit(self, event: dict) -> None:
        """Queue an event for the client (thread-safe: the worker calls it from its thread)."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, event)
        except RuntimeError:  # the connection's loop has ended (its client left mid-step): nobody to tell
            pass

    def summary(self) -> dict:
        s = self.stats
        return SessionStats(
            session_id=self.id,
            frames_received=s["received"],
            decisions=s["decisions"],
            responses=s["responses"],
            dropped={k[len("dropped:") :]: v for k, v in s.items() if k.startswith("dropped:")},
            questions=s["questions"],
            cache_tokens=self.session.cache_tokens,
            cache_bytes=self.session.cache_bytes,
            seconds=round(time.monotonic() - self.started, 3),
        ).dump()

    def dropped(self, seq: int, reason: str, message: str) -> None:
        self.stats[f"dropped:{reason}"] += 1
        self.emit(FrameDropped(seq=seq, reason=reason, message=message).dump())


class InferenceWorker(threading.Thread):
    def __init__(
        self,
        model_lock: threading.Lock | None = None,
        engine: BatchEngine | None = None,
        prepare_threads: int = 2,
    ):
        super().__init__(name="evostreaming-inference", daemon=True)
        self.model_lock = model_lock or threading.Lock()  # shared with /v1/chat/completions
        self.engine = engine  # None: one session at a time, round-robin
        self._cond = threading.Condition()
        self._sessions: list[ServedSession] = []
        self._closing: list[StreamingSession] = []  # released on the worker's thread (it owns the pool)
        self._turn = itertools.count()
        self._stop = False
        self._prepare = ThreadPoolExecutor(max_workers=prepare_threads, thread_name_prefix="frame-prepare")

    # -- called from the event loop -------------------------------------------------------------
    def add(self, sess: ServedSession) -> None:
        with self._cond:
            self._sessions.append(sess)

    def remove(self, sess: ServedSession) -> None:
        with self._cond:
            sess.closed = True
            if sess in self._sessions:
                self._sessions.remove(sess)
            self._closing.append(sess.session)
            self._cond.notify()

    def replace_session(self, sess: ServedSession, session: StreamingSession) -> None:
        """A session rebuilt by ``session.update`` (before its first frame); the old one's slots go back."""
        with self._cond:
            self._closing.append(sess.session)
            sess.session = session

    def submit(self, sess: ServedSession, job: FrameJob, decode=None) -> FrameJob | None:
        """Put ``job`` in the session's slot; returns the frame it replaced (not yet stepped), if any.
        ``decode`` (a callable returning the RGB image) runs in the prepare pool, then the image processor."""
        job.prepared = self._prepare.submit(self._prepare_frame, sess.session, job, decode)
        job.prepared.add_done_callback(lambda _: self._wake())
        with self._cond:
            replaced, sess.pending = sess.pending, job
            if replaced is not None:  # its questions move on to the frame that replaces it
                job.questions = replaced.questions + job.questions
            self._cond.notify()
        return replaced

    @staticmethod
    def _prepare_frame(session: StreamingSession, job: FrameJob, decode):
        image = decode() if decode is not None else job.image
        return image, session.encode_frame(image)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._prepare.shutdown(wait=False, cancel_futures=True)

    # -- the worker thread ----------------------------------------------------------------------
    def _admit(self, limit: int | None) -> list[tuple[ServedSession, FrameJob]] | None:
        """Wait for work; take the ready frames of sessions not already stepping (None: stop)."""
        with self._cond:
            while not self._stop:
                busy = {t.tag.sess for t in self.engine.in_flight()} if self.engine is not None else set()
                ready = [
                    s
                    for s in self._sessions
                    if s.pending is not None and s.pending.prepared.done() and s not in busy and not s.closed
                ]
                if ready or busy or self._closing:
                    start = next(self._turn) % len(ready) if ready else 0
                    ready = (ready[start:] + ready[:start])[:limit]  # round-robin: nobody starves
                    taken = []
                    for s in ready:
                        taken.append((s, s.pending))
                        s.pending = None
                    return taken
                self._cond.wait()
            return None

    def _release_closed(self) -> None:
        with self._cond:
            closing, self._closing = self._closing, []
        busy = {t.session for t in self.engine.in_flight()} if self.engine is not None else set()
        for session in closing:
            if session in busy:  # still stepping: released once its step is over
                with self._cond:
                    self._closing.append(session)
            else:
                session.close()

    def run(self) -> None:
        while (taken := self._admit(None if self.engine is not None else 1)) is not None:
            self._release_closed()
            with self.model_lock:
                if self.engine is None:
                    for sess, job in taken:
                        self._step_alone(sess, job)
                    continue
                for sess, job in taken:
                    self._start(sess, job)
                finished = self.engine.drain()
                if self.engine.busy:
                    finished += self.engine.tick()
            for ticket in finished:
                self._finish(ticket)

    def _frame(self, sess: ServedSession, job: FrameJob):
        """The prepared frame, or None after telling the client why it could not be read."""
        try:
            return job.prepared.result()
        except Exception as exc:
            with self._cond:  # its questions wait for the next frame, as for a frame never sent
                sess.questions[:0] = job.questions
            reason = "pixels" if isinstance(exc, FrameTooLarge) else "decode"
            sess.dropped(job.seq, reason, str(exc))
            return None

    def _start(self, sess: ServedSession, job: FrameJob) -> None:
        prepared = self._frame(sess, job)
        if prepared is None:
            return
        image, encoded = prepared
        if not sess.session.kv.pooled and not sess.session.segments:
            self.engine.attach(sess.session)
        hooks = _StepEvents(sess, job)
        self.engine.submit(
            sess.session,
            image,
            job.time,
            hooks.question,
            tag=hooks,
            encoded_frame=encoded,
            on_decision=hooks.decision,
            on_token=hooks.token,
        )

    def _finish(self, ticket: Ticket) -> None:
        hooks: _StepEvents = ticket.tag
        if ticket.error is not None:
            hooks.failed(ticket.error)
        else:
            hooks.done(ticket.result)

    def _step_alone(self, sess: ServedSession, job: FrameJob) -> None:
        prepared = self._frame(sess, job)
        if prepared is None:
            return
        image, encoded = prepared
        hooks = _StepEvents(sess, job)
        try:
            result = sess.session.step(
                image,
                job.time,
                hooks.question,
                encoded_frame=encoded,
                on_decision=hooks.decision,
                on_token=hooks.token,
            )
        except Exception as exc:  # one session's failure must not stop the others
            hooks.failed(exc)
            return
        hooks.done(result)


class _StepEvents:
    """The events of one frame's step, sent as the step goes: its decision, the reply's text as it is
    generated, the reply's end (or the step's failure)."""

    def __init__(self, sess: ServedSession, job: FrameJob):
        self.sess, self.job = sess, job
        self.question = " ".join(job.questions) or None
        self.response_id = f"resp_{sess.id[5:]}_{job.seq}"
        self.sent = ""

    def decision(self, decision) -> None:
        sess, s = self.sess, self.sess.session
        sess.stats["decisions"] += 1
        sess.emit(
            FrameDecision(
                seq=self.job.seq,
                time=self.job.time,
                action="silent" if decision.silent else "respond",
                p_silent=decision.silence_prob,
                # from the frame's arrival: decoding, waiting for the batch, the forward
                step_ms=round(1000 * (time.perf_counter() - self.job.arrived), 2),
                cache_tokens=s.cache_tokens,
                cache_bytes=s.cache_bytes,
                question=self.question,
            ).dump()
        )
        if not decision.silent:
            sess.emit(ResponseCreated(response_id=self.response_id, seq=self.job.seq, time=self.job.time).dump())

    def token(self, ids: list[int]) -> None:
        text = self.sess.session.tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.sess.emit(ResponseTextDelta(response_id=self.response_id, delta=text[len(self.sent) :]).dump())
            self.sent = text

    def done(self, result) -> None:
        if result.action != "respond":
            return
        self.sess.stats["responses"] += 1
        self.sess.emit(
            ResponseDone(
                response_id=self.response_id,
                seq=self.job.seq,
                time=self.job.time,
                text=result.text,
                tokens=result.n_tokens,
            ).dump()
        )

    def failed(self, exc: BaseException) -> None:
        self.sess.emit(ErrorEvent(code="step_failed", message=f"frame {self.job.seq}: {exc}").dump())
