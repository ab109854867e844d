"""Policies that drive a model behind a server: ``--policy SCHEME:ARGS`` on ``eval run``.

* ``openai:URL,model=NAME``: any OpenAI-compatible chat server (vLLM, SGLang, ``evostreaming serve``);
  every step re-sends the whole causal history, never editing its prefix (prefix caches stay valid).
* ``realtime:WS_URL``: our own realtime server (``evostreaming serve``); one evaluation stream is one
  WebSocket session, stepped in lockstep (send a frame, wait for its decision and reply).

Each scheme is one registry entry; ``eval run --concurrency N`` runs N streams at once, each with its
own copy of the policy (``fork``) and so its own history or connection. An API key comes from
``api_key=KEY`` in the spec or the ``EVOSTREAMING_API_KEY`` variable (kept out of the process list).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from evostreaming.eval.policies import Policy, PolicyStep
from evostreaming.eval.schema import Sample
from evostreaming.stream.memory import MemoryPolicy
from evostreaming.utils.errors import UserError
from evostreaming.utils.openai_client import NOTICE_EVERY_S, print_waiting
from evostreaming.utils.openai_spec import parse_spec, redact, split_spec
from evostreaming.utils.registry import Registry

FORMS = "openai:URL,model=NAME (vLLM, SGLang, evostreaming serve) or realtime:ws://HOST:PORT/v1/realtime"


@dataclass(frozen=True)
class RemoteSettings:
    """What every remote policy is told by ``eval run`` (the server holds the rest)."""

    system_prompt: str
    marker: str
    max_new_tokens: int = 48
    visual_tokens_per_frame: int | None = None
    memory_window_s: float = 0.0  # bounded memory, seconds of frames (0 = unbounded)


# Each entry is a Policy class built as ``cls(spec, settings)`` with a ``usage(url, opts)`` static
# method that returns the right form when a spec is malformed, else None.
REMOTE_POLICIES: Registry[type[Policy]] = Registry("remote policy", hint=FORMS)


def check_remote_spec(spec: str) -> None:
    """A clear error for a malformed ``--policy`` before anything runs."""
    scheme, url, opts = split_spec(spec)
    if scheme not in REMOTE_POLICIES:
        raise ValueError(f"--policy {redact(spec)!r}: use {FORMS}")
    parse_spec(spec, flag="--policy")  # one parser for every endpoint spec: an unknown option is named here
    form = REMOTE_POLICIES.get(scheme).usage(url, opts)
    if form:
        raise ValueError(f"--policy {spec!r}: use {form}")


def make_remote_policy(spec: str, settings: RemoteSettings) -> Policy:
    check_remote_spec(spec)
    scheme, _, _ = split_spec(spec)
    return REMOTE_POLICIES.get(scheme)(spec, settings)


def trim_history(messages: list[dict], window: int, block: int) -> int:
    """Bounded memory for a re-sent history: when more than ``window`` user turns (one frame each) are
    held, drop the oldest whole turns (a user turn with the reply that followed it) down to
    ``window - block + 1``. Dropping edits the prefix, so the server's prefix cache misses once for the
    whole remaining history; dropping ``block`` turns at a time pays that miss once every ``block``
    steps instead of at every step. ``messages`` is [system, user, assistant, ..., user]; returns the
    number of turns dropped."""
    users = sum(1 for m in messages if m["role"] == "user")
    if users <= window:
        return 0
    drop = users - window + block - 1
    del messages[1 : 1 + 2 * drop]
    return drop


def _api_key(opts: dict[str, str]) -> str | None:
    return opts.get("api_key") or os.environ.get("EVOSTREAMING_API_KEY") or None  # as parse_spec, minus OPENAI's


class RemoteUnavailable(UserError, RuntimeError):
    """The server does not answer before the run: it stops at once with the cause (exit 2)."""


class OpenAIPolicy(Policy):
    """A model behind an OpenAI-compatible chat server.

    At each step one request carries the whole causal history: the system prompt, every earlier user
    turn (its frame as a PNG data URL, and its text) and the model's own earlier replies, the silence
    marker included. The prefix is never edited, so a server's prefix cache stays valid and each step
    pays only for the new frame. The step is silent when the first generated token is the marker
    (from the returned log-probabilities) or, without them, when the reply starts with the marker.
    """

    needs_frames = True

    @staticmethod
    def usage(url: str, opts: dict[str, str]) -> str | None:
        if url.startswith(("http://", "https://")) and "model" in opts:
            return None
        return "openai:URL,model=NAME (e.g. openai:http://127.0.0.1:8000/v1,model=pocket)"

    def __init__(self, spec: str, settings: RemoteSettings):
        from evostreaming.utils.openai_client import ChatClient

        _, url, opts = split_spec(spec)
        parsed = parse_spec(spec, flag="--policy")
        bounds = {k: v for k, v in (("timeout_s", parsed.timeout_s), ("retries", parsed.retries)) if v is not None}
        self.client = ChatClient(url, opts["model"], api_key=_api_key(opts), **bounds)  # thread-safe: shared by forks
        self.name = f"openai:{opts['model']}"
        self.system = settings.system_prompt.replace("{marker}", settings.marker)
        self.marker, self.max_new_tokens = settings.marker, settings.max_new_tokens
        self.memory_window_s = settings.memory_window_s

    def check(self) -> None:
        from evostreaming.utils.openai_client import RemoteError

        try:
            self.client.complete([{"role": "user", "content": "Reply with 1."}], max_tokens=1, temperature=0.0)
        except RemoteError as exc:
            raise RemoteUnavailable(f"--policy {self.name}: the server does not answer: {exc}") from None

    def reset(self, sample: Sample) -> None:
        self.messages: list[dict] = [{"role": "system", "content": self.system}]
        self.window = MemoryPolicy.for_stream(self.memory_window_s, sample.fps).window_frames
        self.block = max(1, (self.window or 0) // 4)
        self.prefix_misses = 0  # steps whose request edited the prefix (bounded memory's drops)

    def step(self, k, time, frame, user_text):
        from evostreaming.utils.openai_client import image_data_url

        content = [{"type": "image_url", "image_url": {"url": image_data_url(frame)}}]
        if user_text:
            content.append({"type": "text", "text": user_text})
        self.messages.append({"role": "user", "content": content})
        if self.window and trim_history(self.messages, self.window, self.block):
            self.prefix_misses += 1
        done = self.client.completion(
            self.messages, max_tokens=self.max_new_tokens, temperature=0.0, logprobs=True, top_logprobs=5
        )
        text, first = done.text, done.first
        # a one-token marker: the top first token decides; otherwise (or without log-probabilities) the text
        silent = text.strip().startswith(self.marker) or bool(first and first[0]["token"] == self.marker)
        reply = self.marker if silent else text  # as generated: the next request re-tokenizes it
        self.messages.append({"role": "assistant", "content": reply})
        if silent:
            return PolicyStep("silent")
        # the reply's length in model tokens as the server counts it (usage); words when it does not say
        tokens = done.reply_tokens if done.reply_tokens is not None else len(text.split())
        return PolicyStep("respond", text.strip(), tokens)


class RealtimeError(RuntimeError):
    """The realtime server refused or failed a step (the sample is recorded as failed, with this)."""


class RealtimePolicy(Policy):
    """Our realtime server, one WebSocket session per evaluation stream, in lockstep.

    Each step sends the user text (``conversation.item.create``, bound by the server to the next frame),
    then the frame as a lossless PNG with its step number and media time, and waits for that frame's
    ``frame.decision`` and, when it responds, its streamed reply up to ``response.done``. The server's
    own session does the streaming (its KV cache, its silence decision), so the trajectory is the one a
    live user of that server would get. Frames are paced to the server's advertised ``max_fps``: start
    the server for evaluation with a high ``--max-fps`` and ``--max-sessions`` at least the concurrency.
    A dropped frame or an error fails the sample with the server's reason.
    """

    needs_frames = True

    @staticmethod
    def usage(url: str, opts: dict[str, str]) -> str | None:
        if url.startswith(("ws://", "wss://")):
            return None
        return "realtime:ws://HOST:PORT/v1/realtime (wss:// through TLS)"

    def __init__(
        self,
        spec: str,
        settings: RemoteSettings,
        *,
        timeout_s: float | None = None,
        notice_every_s: float = NOTICE_EVERY_S,
        on_wait: Callable[[str], None] | None = None,
    ):
        _, url, opts = split_spec(spec)
        # the longest wait for one event (a frame's decision, a reply's end): the spec's timeout=, else 600 s
        timeout_s = timeout_s or parse_spec(spec, flag="--policy").timeout_s or 600.0
        self.url, self.api_key, self.timeout_s = url, _api_key(opts), timeout_s
        self.notice_every_s, self.on_wait = notice_every_s, on_wait or print_waiting
        self.settings = settings
        self.name = "realtime:" + url
        self.ws = None
        self.limits: dict = {}
        self.served: dict | None = None  # the server's model identity, from session.created
        self._last_sent = 0.0

    def fork(self) -> RealtimePolicy:
        twin = copy.copy(self)
        twin.ws = None  # a connection of its own
        return twin

    # -- the connection ----------------------------------------------------------------------
    def _recv(self) -> dict:
        from websockets.exceptions import ConnectionClosed

        try:
            return json.loads(self._waited_recv("no event"))
        except ConnectionClosed as exc:
            raise RealtimeError(f"{self.url}: the server closed the session ({exc.rcvd or exc})") from None

    def _waited_recv(self, what: str) -> str:
        """The next message; while none comes, a line every ``notice_every_s`` says how long it has waited,
        and after ``timeout_s`` the step fails (a stalled server is never a silent wait)."""
        waited = 0.0
        while True:
            wait = min(self.notice_every_s, self.timeout_s - waited)
            try:
                return self.ws.recv(timeout=wait)
            except TimeoutError:
                waited += wait
                if waited >= self.timeout_s - 1e-9:
                    raise RealtimeError(
                        f"{self.url}: {what} for {self.timeout_s:g} s (timeout=SECONDS in the spec)"
                    ) from None
                self.on_wait(f"waiting for {self.url}: {what} for {waited:.0f} s; gives up after {self.timeout_s:g} s")

    def _send(self, event: dict) -> None:
        self.ws.send(json.dumps(event))

    def reset(self, sample: Sample) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        from evostreaming.serve.client import HandshakeError, session_opened, subprotocols

        self.end()
        protocols = subprotocols(self.api_key)
        try:
            # entered as a context manager (websockets >= 17.1 warns otherwise); end() leaves it
            self._held = contextlib.ExitStack()
            opened = connect(self.url, subprotocols=protocols, open_timeout=30, max_size=None)
            self.ws = self._held.enter_context(opened)
        except InvalidStatus as exc:
            code = exc.response.status_code
            # evostreaming serve refuses a wrong key *after* the handshake (close 1008, said by
            # session_opened); an HTTP refusal of the upgrade means no WebSocket route at this path
            # (Starlette answers 403), or a proxy in front that wants its own credentials (401)
            from evostreaming.serve.client import realtime_url

            hint = {
                401: " (a proxy in front of the server asks for credentials)",
                403: f" (no realtime endpoint at this path; evostreaming serve's is {realtime_url(self.url)})",
                404: f" (no such path; evostreaming serve's realtime endpoint is {realtime_url(self.url)})",
            }.get(code, "")
            raise RealtimeError(f"{self.url}: refused with HTTP {code}{hint}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise RealtimeError(f"{self.url}: cannot connect ({exc}); is 'evostreaming serve' running?") from None
        try:
            first, close = json.loads(self._waited_recv("no session")), None
        except ConnectionClosed as exc:
            first, close = None, exc.rcvd
        try:
            hint = "lower --concurrency or start the server with a higher --max-sessions"
            first = session_opened(self.url, first, close, full_hint=hint)
        except HandshakeError as exc:
            raise RealtimeError(str(exc)) from None
        self.limits = first.get("limits", {})
        info = first.get("session", {})
        # which weights answer: part of the job identity (a resumed run against another model is refused)
        self.served = info.get("model_identity") or {"model": info.get("model")}
        served = float(self.limits.get("memory_window_s", self.settings.memory_window_s))
        if served != self.settings.memory_window_s:  # the server's sessions bound memory, not this client
            raise RealtimeError(
                f"{self.url}: the server keeps {served:g} s of frames per session but this run asks "
                f"--memory-window {self.settings.memory_window_s:g}; start it with 'evostreaming serve ... "
                f"--memory-window {self.settings.memory_window_s:g}' (0 = unbounded)"
            )
        max_fps = float(self.limits.get("max_fps", sample.fps))
        update: dict = {"fps": min(sample.fps, max_fps), "system_prompt": self.settings.system_prompt}
        if self.settings.visual_tokens_per_frame:
            update["visual_tokens_per_frame"] = self.settings.visual_tokens_per_frame
        self._send({"type": "session.update", "session": update})
        self._until(lambda e: e.get("type") == "session.updated")
        self._last_sent = 0.0

    def check(self) -> None:
        probe = Sample.model_construct(fps=0.5)  # only its fps is read when a session opens
        try:
            self.reset(probe)
        except RealtimeError as exc:
            raise RemoteUnavailable(f"--policy {self.name}: {exc}") from None
        finally:
            self.end()

    def _until(self, done: Callable[[dict], bool]) -> dict:
        while True:
            event = self._recv()
            if event.get("type") == "error":
                raise RealtimeError(f"{self.url}: {event.get('code')}: {event.get('message')}")
            if done(event):
                return event

    def _frame_bytes(self, frame) -> bytes:
        image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")  # lossless: the server sees the frame we read
        data = buf.getvalue()
        cap = int(self.limits.get("max_frame_bytes", len(data)))
        if len(data) > cap:  # a large frame: the best JPEG under the server's cap
            for quality in (95, 85, 75):
                buf = io.BytesIO()
                image.convert("RGB").save(buf, format="JPEG", quality=quality)
                if len(buf.getvalue()) <= cap:
                    return buf.getvalue()
            raise RealtimeError(f"a frame of {image.size[0]}x{image.size[1]} is over the server's {cap} bytes")
        return data

    def step(self, k, time_s, frame, user_text):
        from evostreaming.serve.protocol import pack_frame

        if user_text:
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": user_text}]}
            self._send({"type": "conversation.item.create", "item": item})
        data = self._frame_bytes(frame)
        gap = 1.1 / float(self.limits.get("max_fps", 1e9))  # 10 % under the limit: jitter in between
        wait = self._last_sent + gap - time.monotonic()
        if wait > 0:  # the server drops frames that come faster than its max_fps
            time.sleep(wait)
        self.ws.send(pack_frame(k, float(time_s), data))
        self._last_sent = time.monotonic()
        event = self._until(lambda e: e.get("seq") == k and e.get("type") in ("frame.decision", "frame.dropped"))
        if event["type"] == "frame.dropped":
            raise RealtimeError(f"the server dropped frame {k} ({event.get('reason')}: {event.get('message')})")
        if event["action"] == "silent":
            return PolicyStep("silent")
        done = self._until(lambda e: e.get("type") == "response.done" and e.get("seq") == k)
        text = done.get("text", "")
        return PolicyStep("respond", text, int(done.get("tokens", len(text.split()))))

    def end(self) -> None:
        if self.ws is None:
            return
        ws, self.ws = self.ws, None
        try:
            ws.send(json.dumps({"type": "session.close"}))
        except Exception:  # noqa: BLE001 - closing a connection that may already be gone
            pass
        self._held.close()


REMOTE_POLICIES.register("openai", OpenAIPolicy)
REMOTE_POLICIES.register("realtime", RealtimePolicy)
