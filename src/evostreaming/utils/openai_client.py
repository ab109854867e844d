"""The one client for OpenAI-compatible chat servers (vLLM, SGLang, hosted APIs), on the official
``openai`` SDK: its timeouts and its retries with exponential backoff (connection errors, 408, 409,
429 and 5xx), plus bounded concurrency for batches. Used by the LLM judge and the evolve server
backend. A request that still fails raises ``RemoteError`` naming the URL, the model and the status.

A stalled server is never a silent wait: while a request has no reply, a line says so every
``NOTICE_EVERY_S`` seconds, and the request fails after about (retries + 1) x timeout (30 s x 3 by
default; ``timeout=`` and ``retries=`` in an endpoint spec change them).
"""

from __future__ import annotations

import base64
import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from evostreaming.utils.errors import UserError


@dataclass(frozen=True)
class Completion:
    text: str
    first: list[dict] | None  # the first token's top alternatives, when asked for and returned
    reply_tokens: int | None  # the reply's length in tokens (usage), without an end-of-turn token


class RemoteError(UserError, RuntimeError):
    pass


def image_data_url(frame) -> str:
    """A frame (PIL image or uint8 array) as a lossless PNG data URL for an ``image_url`` item."""
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both mean ``http://host:8000/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


DEFAULT_TIMEOUT_S = 30.0  # one attempt's wait for a reply
DEFAULT_RETRIES = 2
NOTICE_EVERY_S = 15.0


def print_waiting(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class ChatClient:
    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    concurrency: int = 8
    notice_every_s: float = NOTICE_EVERY_S
    on_wait: Callable[[str], None] = print_waiting  # where the "still waiting" lines go
    _client: object = field(init=False, repr=False)
    _last_notice: float = field(init=False, repr=False, default=0.0)
    _notice_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    @property
    def bound_s(self) -> float:
        """About the longest a request waits before it fails: every attempt's timeout (backoff aside)."""
        return self.timeout_s * (self.retries + 1)

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        """While the request runs, one line every ``notice_every_s`` (one per client, however many threads
        wait) says how long it has waited and when it gives up."""
        done, start = threading.Event(), time.monotonic()

        def watch() -> None:
            while not done.wait(self.notice_every_s):
                with self._notice_lock:
                    now = time.monotonic()
                    if now - self._last_notice < self.notice_every_s * 0.9:
                        continue
                    self._last_notice = now
                self.on_wait(
                    f"waiting for {self.base_url} (model {self.model!r}): no reply for {now - start:.0f} s; gives "
                    f"up after about {self.bound_s:.0f} s (timeout={self.timeout_s:g} x {self.retries + 1} attempts)"
                )

        threading.Thread(target=watch, daemon=True, name="openai-wait").start()
        try:
            yield
        finally:
            done.set()

    def __post_init__(self) -> None:
        from openai import OpenAI

        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        self.base_url = normalize_base_url(self.base_url)
        # local servers take any key; the SDK insists on one
        self._client = OpenAI(
            base_url=self.base_url, api_key=self.api_key or "EMPTY", timeout=self.timeout_s, max_retries=self.retries
        )

    def chat(self, messages: list[dict], **params) -> str:
        """One chat completion's text (``params``: max_tokens, temperature, seed, ...)."""
        return self.complete(messages, **params)[0]

    def complete(self, messages: list[dict], **params) -> tuple[str, list[dict] | None]:
        """The text and, when asked with ``logprobs=True, top_logprobs=K`` and the server returns them,
        the first generated token's top alternatives as ``[{"token", "logprob"}, ...]``."""
        done = self.completion(messages, **params)
        return done.text, done.first

    def completion(self, messages: list[dict], **params) -> Completion:
        """``complete`` with the reply's length in tokens, when the server reports it."""
        import openai

        url = f"{self.base_url}/chat/completions"
        attempts = f"after {self.retries + 1} attempt(s)"
        try:
            with self._waiting():
                resp = self._client.chat.completions.create(model=self.model, messages=messages, **params)
        except openai.APITimeoutError as exc:
            raise RemoteError(
                f"{url}: model {self.model!r}: no reply within {self.timeout_s:g} s, {attempts} (a stalled or "
                "overloaded server; timeout=SECONDS and retries=N in the spec change the wait)"
            ) from exc
        except openai.APIStatusError as exc:
            if exc.status_code not in (408, 409, 429) and exc.status_code < 500:
                attempts = "not retried: a client error"
            raise RemoteError(
                f"{url}: model {self.model!r}: HTTP {exc.status_code} ({attempts}); check that the server is up "
                "and serves this model name (GET /v1/models)"
            ) from exc
        except openai.APIError as exc:  # connection refused, timeout, unreadable reply
            raise RemoteError(f"{url}: model {self.model!r}: {exc} ({attempts}); is the server up?") from exc
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise RemoteError(f"{url}: model {self.model!r}: a reply without choices[0].message") from exc
        first = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            first = [{"token": t.token, "logprob": t.logprob} for t in (content[0].top_logprobs or [])]
        tokens = getattr(getattr(resp, "usage", None), "completion_tokens", None)
        if tokens is not None and choice.finish_reason == "stop":
            tokens = max(0, tokens - 1)  # the end-of-turn token that stopped it is counted, not part of the reply
        return Completion(text, first, tokens)

    def chat_many(self, conversations: list[list[dict]], params: list[dict]) -> list[str]:
        """``chat`` for each conversation, at most ``concurrency`` in flight; results in order."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self.chat, m, **p) for m, p in zip(conversations, params, strict=True)]
            return [f.result() for f in futures]
