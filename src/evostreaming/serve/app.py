"""The FastAPI application: the page, health, models, uploads and the realtime WebSocket (docs/server.md)."""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import math
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlparse

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError

from evostreaming.serve.config import ServerConfig
from evostreaming.serve.protocol import (
    AUTH_PREFIX,
    PROTOCOL,
    ProtocolError,
    frame_from_json,
    question_text,
    unpack_frame,
)
from evostreaming.serve.worker import FrameJob, InferenceWorker, ServedSession

STATIC = Path(__file__).resolve().parent / "static"
CLOSE_POLICY, CLOSE_FULL, CLOSE_NORMAL = 1008, 1013, 1000


def create_app(loaded, config: ServerConfig) -> FastAPI:
    """``loaded``: a ``models.LoadedModel`` (weights shared read-only by every session)."""
    from evostreaming.stream.memory import MemoryPolicy
    from evostreaming.stream.session import SessionConfig, StreamingSession

    limits = config.limits
    model_lock = threading.Lock()  # one forward at a time: session steps and chat completions
    engine = None
    if config.batch:
        from evostreaming.stream.engine import BatchEngine

        engine = BatchEngine(loaded.model, max_batch_tokens=config.max_batch_tokens)
    worker = InferenceWorker(model_lock, engine)
    sessions: set[ServedSession] = set()  # lives in the app's closure: no module-level state

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        yield
        worker.stop()

    app = FastAPI(title="evostreaming", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def authorized(token: str | None) -> bool:
        if not config.api_key:
            return True
        return token is not None and hmac.compare_digest(token.encode(), config.api_key.encode())

    def bearer(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        if not authorized(token):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")

    @app.get("/")
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "sessions": len(sessions), "max_sessions": limits.max_sessions}

    @app.get("/v1/models")
    async def models(request: Request):
        bearer(request)
        return {
            "object": "list",
            "data": [{"id": loaded.spec, "family": loaded.adapter.family, "protocol": PROTOCOL}],
        }

    @app.post("/v1/uploads")
    async def upload(request: Request):
        """The request body is the file (streamed to disk, capped); returns the id a session can use."""
        bearer(request)
        config.upload_dir.mkdir(parents=True, exist_ok=True)
        upload_id = "up_" + uuid.uuid4().hex[:16]
        path = config.upload_dir / upload_id
        size = 0
        with open(path, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    f.close()
                    path.unlink(missing_ok=True)
                    raise HTTPException(
                        413, f"upload larger than the server's limit of {limits.max_upload_bytes} bytes"
                    )
                f.write(chunk)
        if size == 0:
            path.unlink(missing_ok=True)
            raise HTTPException(400, "empty upload: send the file as the request body")
        return {"id": upload_id, "bytes": size}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        """Stateless, OpenAI's shape (docs/server.md): for the ``openai:`` policy, judges, ``evolve --server``."""
        from evostreaming.serve.chat import chat_completion

        bearer(request)
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, f"the body is not JSON ({exc})") from exc

        def run():
            with model_lock:
                return chat_completion(loaded, body, loaded.spec)

        try:
            return await asyncio.to_thread(run)
        except ProtocolError as exc:
            raise HTTPException(400, str(exc)) from exc

    def new_session(settings: dict) -> StreamingSession:
        fps = settings["fps"]
        window = math.ceil(limits.memory_window_s * fps) if limits.memory_window_s > 0 else None
        cfg = SessionConfig(
            system_prompt=settings.get("system_prompt") or SessionConfig().system_prompt,
            silence_threshold=config.silence_threshold,
            max_new_tokens=config.max_new_tokens,
            memory=MemoryPolicy(window_frames=window),
            visual_tokens_per_frame=settings.get("visual_tokens_per_frame", 128),
        )
        return StreamingSession(loaded.model, loaded.processor, loaded.adapter, cfg)

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket):
        offered = list(ws.scope.get("subprotocols") or [])
        token = next((p[len(AUTH_PREFIX) :] for p in offered if p.startswith(AUTH_PREFIX)), None)
        header = ws.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:]
        chosen = PROTOCOL if PROTOCOL in offered else None
        if not authorized(token):
            await ws.close(code=CLOSE_POLICY, reason="missing or wrong API key")
            return
        await ws.accept(subprotocol=chosen)
        if len(sessions) >= limits.max_sessions:
            await ws.send_json(
                {"type": "error", "code": "server_full", "message": f"server full: {limits.max_sessions} sessions"}
            )
            await ws.close(code=CLOSE_FULL, reason=f"server full ({limits.max_sessions} sessions); try again later")
            return
        settings = {"fps": min(0.5, limits.max_fps), "source": {"type": "client"}}
        sess = ServedSession(new_session(settings), asyncio.get_running_loop())
        sessions.add(sess)
        worker.add(sess)
        sender = asyncio.create_task(_send_events(ws, sess))
        source_stop = threading.Event()
        seq_counter = [0]
        sess.emit(
            {
                "type": "session.created",
                "protocol": PROTOCOL,
                "session": {"id": sess.id, "model": loaded.spec, **settings},
                "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__},
            }
        )
        reason = "client closed"
        try:
            while True:
                remaining = limits.max_session_s - (time.monotonic() - sess.started)
                if remaining <= 0:
                    reason = "session length limit reached"
                    break
                try:
                    message = await asyncio.wait_for(ws.receive(), timeout=min(limits.idle_timeout_s, remaining))
                except asyncio.TimeoutError:
                    reason = "idle timeout" if remaining > limits.idle_timeout_s else "session length limit reached"
                    break
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    if message.get("bytes") is not None:
                        _on_frame(sess, unpack_frame(message["bytes"]), settings)
                    elif message.get("text") is not None:
                        event = _parse(message["text"])
                        kind = event.get("type")
                        if kind == "input_frame":
                            _on_frame(sess, frame_from_json(event), settings)
                        elif kind == "conversation.item.create":
                            text = question_text(event)
                            if len(text) > limits.max_question_chars:
                                raise ProtocolError(
                                    "question_too_long", f"a question is at most {limits.max_question_chars} characters"
                                )
                            sess.questions.append(text)
                            sess.stats["questions"] += 1
                            sess.emit({"type": "conversation.item.created", "text": text, "bound_to": "next frame"})
                        elif kind == "session.update":
                            _on_update(sess, event.get("session") or {}, settings, source_stop, seq_counter)
                        elif kind == "session.close":
                            break
                        else:
                            raise ProtocolError("unknown_event", f"unknown event type {kind!r}")
                except ProtocolError as exc:
                    sess.emit({"type": "error", "code": exc.code, "message": str(exc)})
        except WebSocketDisconnect:
            pass
        finally:
            source_stop.set()
            worker.remove(sess)
            sessions.discard(sess)
            sess.emit({**sess.summary(), "reason": reason})
            sess.emit(None)  # ends the sender
            await sender
            try:
                await ws.close(code=CLOSE_NORMAL, reason=reason)
            except RuntimeError:
                pass  # already closed by the client

    def _on_frame(sess: ServedSession, frame, settings: dict) -> None:
        sess.stats["received"] += 1
        if len(frame.data) > limits.max_frame_bytes:
            sess.dropped(frame.seq, "size", f"frame of {len(frame.data)} bytes; the limit is {limits.max_frame_bytes}")
            return
        now = time.monotonic()
        min_gap = 1.0 / limits.max_fps
        if sess.last_frame_at is not None and now - sess.last_frame_at < min_gap:
            sess.dropped(frame.seq, "rate", f"frames faster than the server's limit of {limits.max_fps} per second")
            return
        sess.last_frame_at = now
        questions, sess.questions = sess.questions, []  # bound to this frame: the next one after them
        # decoded off the event loop, with the image processor (the worker's prepare pool)
        _submit(sess, FrameJob(frame.seq, frame.time, None, questions), decode=lambda: _decode(frame.data))

    def _submit(sess: ServedSession, job: FrameJob, decode=None) -> None:
        """Hand a frame to the worker (from the event loop or a source thread: ``worker.submit`` locks)."""
        replaced = worker.submit(sess, job, decode)
        if replaced is not None:
            sess.dropped(replaced.seq, "superseded", "a newer frame arrived before this one was processed")

    def _on_update(sess, update: dict, settings: dict, source_stop: threading.Event, seq_counter: list) -> None:
        if "fps" in update:
            fps = float(update["fps"])
            if not 0 < fps <= limits.max_fps:
                raise ProtocolError("bad_setting", f"fps must be in (0, {limits.max_fps}]")
            settings["fps"] = fps
        for key in ("system_prompt", "visual_tokens_per_frame"):
            if key in update:
                if sess.stats["decisions"] or sess.pending is not None:
                    raise ProtocolError("bad_setting", f"{key} can only change before the first frame")
                settings[key] = update[key]
                worker.replace_session(sess, new_session(settings))
        source = update.get("source")
        if source and source.get("type") in ("upload", "url"):
            spec = _source_spec(source)
            settings["source"] = source
            source_stop.set()
            source_stop.clear()
            threading.Thread(
                target=_read_source, args=(sess, spec, settings["fps"], source_stop, seq_counter), daemon=True
            ).start()
        sess.emit({"type": "session.updated", "session": {"id": sess.id, **settings}})

    def _source_spec(source: dict) -> str:
        if source["type"] == "upload":
            name = str(source.get("id", ""))
            path = config.upload_dir / name
            if not name.startswith("up_") or "/" in name or not path.is_file():
                raise ProtocolError("bad_source", f"no upload {name!r} on this server (POST /v1/uploads first)")
            return str(path)
        url = str(source.get("url", ""))
        parsed = urlparse(url)
        if parsed.scheme not in ("rtsp", "rtsps", "http", "https") or not parsed.hostname:
            raise ProtocolError("bad_source", f"{url!r}: an rtsp:// or http(s):// URL is needed")
        if parsed.hostname not in config.allowed_url_hosts:
            raise ProtocolError(
                "url_not_allowed",
                f"the server does not read from {parsed.hostname!r}; its operator allows: "
                f"{', '.join(config.allowed_url_hosts) or 'no host'} (serve --allow-url-host)",
            )
        return url

    def _read_source(sess: ServedSession, spec: str, fps: float, stop: threading.Event, seq_counter: list) -> None:
        """Read a server-side source in real time and feed its frames like client frames."""
        from evostreaming.video.sources import VideoSourceError, open_source

        start = time.monotonic()
        try:
            for frame in open_source(spec, fps=fps):
                if stop.is_set() or sess.closed:
                    return
                stop.wait(max(0.0, start + frame.time - time.monotonic()))  # paced at the stream's own clock
                if stop.is_set() or sess.closed:
                    return
                seq_counter[0] += 1
                sess.stats["received"] += 1
                questions, sess.questions = sess.questions, []
                _submit(sess, FrameJob(seq_counter[0], frame.time, frame.image, questions))
            sess.emit({"type": "source.ended", "message": "the source has no more frames"})
        except (VideoSourceError, OSError, ValueError) as exc:
            sess.emit({"type": "error", "code": "source_failed", "message": str(exc)})

    app.state.sessions = sessions
    app.state.worker = worker
    return app


def _decode(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a JPEG/PNG/WebP image ({exc})") from exc
    return image.convert("RGB")


def _parse(text: str) -> dict:
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("bad_json", f"not JSON ({exc})") from exc
    if not isinstance(event, dict):
        raise ProtocolError("bad_json", "an event is a JSON object with a 'type'")
    return event


async def _send_events(ws: WebSocket, sess: ServedSession) -> None:
    while (event := await sess.out.get()) is not None:
        try:
            await ws.send_json(event)
        except (WebSocketDisconnect, RuntimeError):
            return
