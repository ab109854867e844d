"""Served sessions and the one inference worker that steps them.

Every WebSocket owns a ``ServedSession``: its own ``StreamingSession`` (KV cache, history), a
one-frame slot (the newest frame wins; the one it replaces is reported dropped as ``superseded``),
the questions waiting for the next frame, and an asyncio queue of outgoing events. The model's weights
are shared read-only; a single worker thread runs one step at a time, taking sessions round-robin, so
a busy session cannot starve the others and no two steps race on the model.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from PIL import Image

from evostreaming.stream.memory import cache_bytes
from evostreaming.stream.session import StreamingSession


@dataclass
class FrameJob:
    seq: int
    time: float
    image: Image.Image
    questions: list[str] = field(default_factory=list)  # asked before this frame arrived (causal binding)


@dataclass(eq=False)  # identity: sessions live in sets
class ServedSession:
    session: StreamingSession
    loop: asyncio.AbstractEventLoop
    id: str = field(default_factory=lambda: "sess_" + uuid.uuid4().hex[:12])
    out: asyncio.Queue = field(default_factory=asyncio.Queue)
    pending: FrameJob | None = None
    questions: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last_frame_at: float | None = None
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
        return {
            "type": "session.stats",
            "session_id": self.id,
            "frames_received": s["received"],
            "decisions": s["decisions"],
            "responses": s["responses"],
            "dropped": {k[len("dropped:") :]: v for k, v in s.items() if k.startswith("dropped:")},
            "questions": s["questions"],
            "cache_tokens": self.session.cache_tokens,
            "cache_bytes": cache_bytes(self.session.cache),
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def dropped(self, seq: int, reason: str, message: str) -> None:
        self.stats[f"dropped:{reason}"] += 1
        self.emit({"type": "frame.dropped", "seq": seq, "reason": reason, "message": message})


class InferenceWorker(threading.Thread):
    def __init__(self, model_lock: threading.Lock | None = None):
        super().__init__(name="evostreaming-inference", daemon=True)
        self.model_lock = model_lock or threading.Lock()  # shared with /v1/chat/completions
        self._cond = threading.Condition()
        self._sessions: list[ServedSession] = []
        self._turn = itertools.count()
        self._stop = False

    # -- called from the event loop -------------------------------------------------------------
    def add(self, sess: ServedSession) -> None:
        with self._cond:
            self._sessions.append(sess)

    def remove(self, sess: ServedSession) -> None:
        with self._cond:
            sess.closed = True
            if sess in self._sessions:
                self._sessions.remove(sess)

    def submit(self, sess: ServedSession, job: FrameJob) -> FrameJob | None:
        """Put ``job`` in the session's slot; returns the frame it replaced (not yet stepped), if any."""
        with self._cond:
            replaced, sess.pending = sess.pending, job
            if replaced is not None:  # its questions move on to the frame that replaces it
                job.questions = replaced.questions + job.questions
            self._cond.notify()
        return replaced

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    # -- the worker thread ----------------------------------------------------------------------
    def _next(self) -> tuple[ServedSession, FrameJob, list[str]] | None:
        with self._cond:
            while not self._stop:
                ready = [s for s in self._sessions if s.pending is not None]
                if ready:
                    sess = ready[next(self._turn) % len(ready)]  # round-robin over the sessions with work
                    job, sess.pending = sess.pending, None
                    return sess, job, job.questions
                self._cond.wait()
            return None

    def run(self) -> None:
        while (work := self._next()) is not None:
            sess, job, questions = work
            try:
                with self.model_lock:
                    self._step(sess, job, questions)
            except Exception as exc:  # one session's failure must not stop the others
                sess.emit({"type": "error", "code": "step_failed", "message": f"frame {job.seq}: {exc}"})

    def _step(self, sess: ServedSession, job: FrameJob, questions: list[str]) -> None:
        s = sess.session
        question = " ".join(questions) or None
        t0 = time.perf_counter()
        s.push_frame(job.image, question)
        decision = s.decide()
        sess.stats["decisions"] += 1
        sess.emit(
            {
                "type": "frame.decision",
                "seq": job.seq,
                "time": job.time,
                "action": "silent" if decision.silent else "respond",
                "p_silent": decision.silence_prob,
                "step_ms": round(1000 * (time.perf_counter() - t0), 2),
                "cache_tokens": s.cache_tokens,
                "cache_bytes": cache_bytes(s.cache),
                "question": question,
            }
        )
        if not decision.silent:
            response_id = f"resp_{sess.id[5:]}_{job.seq}"
            sess.emit({"type": "response.created", "response_id": response_id, "seq": job.seq, "time": job.time})
            sent = [""]

            def delta(ids: list[int]) -> None:
                text = s.tokenizer.decode(ids, skip_special_tokens=True)
                if len(text) > len(sent[0]) and text.startswith(sent[0]):
                    sess.emit(
                        {
                            "type": "response.output_text.delta",
                            "response_id": response_id,
                            "delta": text[len(sent[0]) :],
                        }
                    )
                    sent[0] = text

            ids = s.generate_reply(ban_marker_start=decision.greedy_silent, on_token=delta)
            text = s.tokenizer.decode(ids, skip_special_tokens=True).strip()
            sess.stats["responses"] += 1
            sess.emit(
                {
                    "type": "response.done",
                    "response_id": response_id,
                    "seq": job.seq,
                    "time": job.time,
                    "text": text,
                    "tokens": len(ids),
                }
            )
        s.enforce_memory()
