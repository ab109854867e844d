"""One realtime WebSocket: ``RealtimeConnection`` holds the connection's state (its settings, its served
session, its server-side source) and has one method per client event, the way vLLM's realtime entry
point is organised. ``create_app`` only wires the route to it.

Every client message is parsed through the typed events of ``serve.protocol``; one that cannot be used
gets one ``error`` event naming the field, and the session goes on.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlparse

from fastapi import WebSocket, WebSocketDisconnect

from evostreaming.serve.config import ServerConfig
from evostreaming.serve.protocol import (
    AUTH_PREFIX,
    PROTOCOL,
    ConversationItemCreate,
    ConversationItemCreated,
    ErrorEvent,
    FrameMessage,
    InputFrame,
    ProtocolError,
    SessionClose,
    SessionCreated,
    SessionSettings,
    SessionUpdate,
    SessionUpdated,
    SourceEnded,
    parse_client_event,
    unpack_frame,
)
from evostreaming.serve.worker import FrameJob, InferenceWorker, RateGate, ServedSession, decode_frame

CLOSE_POLICY, CLOSE_FULL, CLOSE_NORMAL = 1008, 1013, 1000
MAX_REDIRECTS = 5


@dataclass
class ServerState:
    """What every connection shares: the model, the settings, the worker, the live sessions."""

    loaded: object  # models.LoadedModel
    config: ServerConfig
    worker: InferenceWorker
    model_lock: threading.Lock
    sessions: set[ServedSession] = field(default_factory=set)
    # this process's name: behind a load balancer, which replica holds a session (healthz, session.created)
    instance: str = field(default_factory=lambda: "srv_" + uuid.uuid4().hex[:8])
    model_identity: dict = field(default_factory=dict)  # the served weights (a resumed eval run checks them)

    def __post_init__(self) -> None:
        if not self.model_identity and hasattr(self.loaded, "identity"):
            self.model_identity = self.loaded.identity()

    def authorized(self, token: str | None) -> bool:
        if not self.config.api_key:
            return True
        return token is not None and hmac.compare_digest(token.encode(), self.config.api_key.encode())


class _Refused(Exception):
    """The connection cannot go on (``reason``), e.g. a session-length limit."""


class RealtimeConnection:
    def __init__(self, ws: WebSocket, state: ServerState):
        self.ws, self.state = ws, state
        self.limits = state.config.limits
        self.fps = min(0.5, self.limits.max_fps)
        self.system_prompt: str | None = None
        self.visual_tokens = 128
        self.source: dict = {"type": "client"}
        self.sess: ServedSession | None = None
        self.source_stop = threading.Event()
        self.source_seq = 0
        self.last_seq: int | None = None
        self.last_time: float | None = None

    # -- the connection's life ------------------------------------------------------------------------
    async def run(self) -> None:
        if not await self._handshake():
            return
        self.sess = ServedSession(self._new_session(), asyncio.get_running_loop())
        self.state.sessions.add(self.sess)
        self.state.worker.add(self.sess)
        sender = asyncio.create_task(self._send_events())
        self.sess.emit(
            SessionCreated(
                session={
                    "id": self.sess.id,
                    "model": self.state.loaded.spec,
                    "model_identity": self.state.model_identity,
                    "server": self.state.instance,
                    **self._settings(),
                },
                limits={k: getattr(self.limits, k) for k in self.limits.__dataclass_fields__},
            ).dump()
        )
        reason = "client closed"
        try:
            reason = await self._receive_loop()
        except WebSocketDisconnect:
            pass
        finally:
            self.source_stop.set()
            self.state.worker.remove(self.sess)
            self.state.sessions.discard(self.sess)
            self.sess.emit({**self.sess.summary(), "reason": reason})
            self.sess.emit(None)  # ends the sender
            await sender
            try:
                await self.ws.close(code=CLOSE_NORMAL, reason=reason)
            except RuntimeError:
                pass  # already closed by the client

    async def _handshake(self) -> bool:
        offered = list(self.ws.scope.get("subprotocols") or [])
        token = next((p[len(AUTH_PREFIX) :] for p in offered if p.startswith(AUTH_PREFIX)), None)
        header = self.ws.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:]
        # accepted first, then closed: a browser sees close code 1008 (its page can say "wrong key");
        # refused before accepting, it would only see an HTTP 403 and a generic failure
        await self.ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        if not self.state.authorized(token):
            await self.ws.close(code=CLOSE_POLICY, reason="missing or wrong API key")
            return False
        cap = self.limits.max_sessions
        if len(self.state.sessions) >= cap:
            await self.ws.send_json(ErrorEvent(code="server_full", message=f"server full: {cap} sessions").dump())
            await self.ws.close(code=CLOSE_FULL, reason=f"server full ({cap} sessions); try again later")
            return False
        return True

    async def _receive_loop(self) -> str:
        while True:
            remaining = self.limits.max_session_s - (time.monotonic() - self.sess.started)
            if remaining <= 0:
                return "session length limit reached"
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=min(self.limits.idle_timeout_s, remaining))
            except asyncio.TimeoutError:
                return "idle timeout" if remaining > self.limits.idle_timeout_s else "session length limit reached"
            if message["type"] == "websocket.disconnect":
                return "client closed"
            try:
                if message.get("bytes") is not None:
                    self.on_frame(unpack_frame(message["bytes"]))
                    continue
                event = parse_client_event(message.get("text") or "")
                handler = {
                    SessionUpdate: self.on_session_update,
                    ConversationItemCreate: self.on_conversation_item_create,
                    InputFrame: self.on_input_frame,
                    SessionClose: self.on_session_close,
                }[type(event)]
                if await handler(event) == "close":
                    return "client closed"
            except ProtocolError as exc:
                self.sess.emit(ErrorEvent(code=exc.code, message=str(exc)).dump())

    async def _send_events(self) -> None:
        while (event := await self.sess.out.get()) is not None:
            try:
                await self.ws.send_json(event)
            except (WebSocketDisconnect, RuntimeError):
                return

    # -- client events --------------------------------------------------------------------------------
    async def on_input_frame(self, event: InputFrame) -> None:
        self.on_frame(event.frame())

    async def on_conversation_item_create(self, event: ConversationItemCreate) -> None:
        text = event.question()
        if len(text) > self.limits.max_question_chars:
            raise ProtocolError(
                "question_too_long", f"a question is at most {self.limits.max_question_chars} characters"
            )
        self.sess.questions.append(text)
        self.sess.stats["questions"] += 1
        self.sess.emit(ConversationItemCreated(text=text).dump())

    async def on_session_close(self, event: SessionClose) -> str:
        return "close"

    async def on_session_update(self, event: SessionUpdate) -> None:
        new: SessionSettings = event.session
        sent = new.model_fields_set
        if "fps" in sent and new.fps > self.limits.max_fps:
            raise ProtocolError("bad_setting", f"session.fps must be in (0, {self.limits.max_fps}]; got {new.fps}")
        if "system_prompt" in sent and len(new.system_prompt) > self.limits.max_prompt_chars:
            raise ProtocolError(
                "bad_setting",
                f"session.system_prompt is at most {self.limits.max_prompt_chars} characters; "
                f"got {len(new.system_prompt)}",
            )
        rebuild = sent & {"system_prompt", "visual_tokens_per_frame"}
        if rebuild and (self.sess.stats["decisions"] or self.sess.pending is not None):
            raise ProtocolError("bad_setting", f"{', '.join(sorted(rebuild))} can only change before the first frame")
        spec = None
        if new.source is not None and new.source.type != "client":
            spec = await asyncio.to_thread(self._source_spec, new.source.model_dump())  # may follow redirects
        if "fps" in sent:
            self.fps = new.fps
        if "system_prompt" in sent:
            self.system_prompt = new.system_prompt
        if "visual_tokens_per_frame" in sent:
            self.visual_tokens = new.visual_tokens_per_frame
        if rebuild:
            self.state.worker.replace_session(self.sess, self._new_session())
        elif "fps" in sent:  # the window is seconds of frames: at another fps, another number of frames
            self.sess.session.config.memory = self._memory()
        if spec is not None:
            self.source = new.source.model_dump()
            self.source_stop.set()
            self.source_stop = threading.Event()
            threading.Thread(target=self._read_source, args=(spec, self.fps, self.source_stop), daemon=True).start()
        self.sess.emit(SessionUpdated(session={"id": self.sess.id, **self._settings()}).dump())

    def on_frame(self, frame: FrameMessage) -> None:
        sess, limits = self.sess, self.limits
        sess.stats["received"] += 1
        if len(frame.data) > limits.max_frame_bytes:
            sess.dropped(frame.seq, "size", f"frame of {len(frame.data)} bytes; the limit is {limits.max_frame_bytes}")
            return
        if (self.last_seq is not None and frame.seq <= self.last_seq) or (
            self.last_time is not None and frame.time < self.last_time
        ):
            sess.dropped(
                frame.seq,
                "order",
                f"frame {frame.seq} at {frame.time} s comes after frame {self.last_seq} at {self.last_time} s: "
                "sequence numbers must increase and media times must not go back",
            )
            return
        if sess.rate is None:
            sess.rate = RateGate(limits.max_fps)
        if not sess.rate.admit(time.monotonic()):
            sess.dropped(frame.seq, "rate", f"frames faster than the server's limit of {limits.max_fps} per second")
            return
        self.last_seq, self.last_time = frame.seq, frame.time
        questions, sess.questions = sess.questions, []  # bound to this frame: the next one after them
        cap = limits.max_frame_pixels
        # decoded off the event loop, with the image processor (the worker's prepare pool)
        self._submit(FrameJob(frame.seq, frame.time, None, questions), decode=lambda: decode_frame(frame.data, cap))

    # -- helpers --------------------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {
            "fps": self.fps,
            "visual_tokens_per_frame": self.visual_tokens,
            "memory_window_frames": self._memory().window_frames,
            "source": self.source,
        }

    def _memory(self):
        from evostreaming.stream.memory import MemoryPolicy

        return MemoryPolicy.for_stream(self.limits.memory_window_s, self.fps)

    def _new_session(self):
        from evostreaming.stream.session import SessionConfig, StreamingSession

        cfg = SessionConfig(
            system_prompt=self.system_prompt or SessionConfig().system_prompt,
            silence_threshold=self.state.config.silence_threshold,
            max_new_tokens=self.state.config.max_new_tokens,
            memory=self._memory(),
            visual_tokens_per_frame=self.visual_tokens,
        )
        return StreamingSession.of(self.state.loaded, cfg)

    def _submit(self, job: FrameJob, decode=None) -> None:
        """Hand a frame to the worker (from the event loop or a source thread: ``worker.submit`` locks)."""
        replaced = self.state.worker.submit(self.sess, job, decode)
        if replaced is not None:
            self.sess.dropped(replaced.seq, "superseded", "a newer frame arrived before this one was processed")

    def _source_spec(self, source: dict) -> str:
        config = self.state.config
        if source["type"] == "upload":
            name = source["id"]
            path = config.upload_dir / name
            if not name.startswith("up_") or "/" in name or not path.is_file():
                raise ProtocolError("bad_source", f"no upload {name!r} on this server (POST /v1/uploads first)")
            return str(path)
        url = source["url"]
        parsed = urlparse(url)
        if parsed.scheme not in ("rtsp", "rtsps", "http", "https") or not parsed.hostname:
            raise ProtocolError("bad_source", f"{url!r}: an rtsp:// or http(s):// URL is needed")
        self._check_host(parsed.hostname)
        if parsed.scheme in ("http", "https"):
            url = self._resolve_redirects(url)
        return url

    def _check_host(self, host: str) -> None:
        allowed = self.state.config.allowed_url_hosts
        if host not in allowed:
            raise ProtocolError(
                "url_not_allowed",
                f"the server does not read from {host!r}; its operator allows: "
                f"{', '.join(allowed) or 'no host'} (serve --allow-url-host)",
            )

    def _resolve_redirects(self, url: str) -> str:
        """Follow an HTTP URL's redirects here, one hop at a time, each to an allowed host, so the
        reader is handed the final URL: a redirect to any other host is refused (no request forgery)."""
        opener = urllib.request.build_opener(_NoRedirect)
        for _ in range(MAX_REDIRECTS):
            try:
                with opener.open(urllib.request.Request(url, method="HEAD"), timeout=10) as response:
                    response.read(0)
                return url
            except urllib.error.HTTPError as exc:
                if exc.code not in (301, 302, 303, 307, 308):
                    return url  # the reader reports the error itself
                target = urljoin(url, exc.headers.get("Location", ""))
                parsed = urlparse(target)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise ProtocolError("bad_source", f"{url} redirects to {target!r}, not an http(s) URL") from None
                self._check_host(parsed.hostname)
                url = target
            except (urllib.error.URLError, OSError, ValueError):
                return url  # unreachable now: the reader says so (source_failed)
        raise ProtocolError("bad_source", f"more than {MAX_REDIRECTS} redirects from {url}")

    def _read_source(self, spec: str, fps: float, stop: threading.Event) -> None:
        """Read a server-side source in real time and feed its frames like client frames."""
        from evostreaming.video.sources import VideoSourceError, open_source

        sess = self.sess
        start = time.monotonic()
        try:
            for frame in open_source(spec, fps=fps):
                if stop.is_set() or sess.closed:
                    return
                stop.wait(max(0.0, start + frame.time - time.monotonic()))  # paced at the stream's own clock
                if stop.is_set() or sess.closed:
                    return
                self.source_seq += 1
                sess.stats["received"] += 1
                questions, sess.questions = sess.questions, []
                self._submit(FrameJob(self.source_seq, frame.time, frame.image, questions))
            sess.emit(SourceEnded(message="the source has no more frames").dump())
        except (VideoSourceError, OSError, ValueError) as exc:
            sess.emit(ErrorEvent(code="source_failed", message=str(exc)).dump())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # raise the 3xx as an HTTPError: the caller checks the target's host first
