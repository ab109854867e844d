"""The FastAPI application: routes only (docs/server.md). A realtime WebSocket is a ``RealtimeConnection``
(``serve/connection.py``); the sessions are stepped by one ``InferenceWorker`` (``serve/worker.py``)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import iterate_in_threadpool

from evostreaming.serve.config import ServerConfig
from evostreaming.serve.connection import RealtimeConnection, ServerState
from evostreaming.serve.protocol import PROTOCOL, ProtocolError
from evostreaming.serve.worker import InferenceWorker

STATIC = Path(__file__).resolve().parent / "static"


def create_app(loaded, config: ServerConfig) -> FastAPI:
    """``loaded``: a ``models.LoadedModel`` (weights shared read-only by every session)."""
    limits = config.limits
    model_lock = threading.Lock()  # one forward at a time: session steps and chat completions
    engine = None
    if config.batch:
        from evostreaming.stream.engine import BatchEngine

        engine = BatchEngine(loaded.model, max_batch_tokens=config.max_batch_tokens)
    state = ServerState(loaded, config, InferenceWorker(model_lock, engine), model_lock)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.worker.start()
        yield
        state.worker.stop()

    # no /docs or /openapi.json: they would describe the API to anyone without the key
    app = FastAPI(title="evostreaming", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def bearer(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        if not state.authorized(token):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")

    @app.get("/")
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz():
        """Public, for load balancers and operators: alive, and how loaded (no session content)."""
        return {
            "status": "ok",
            "sessions": len(state.sessions),
            "max_sessions": limits.max_sessions,
            "load": round(len(state.sessions) / limits.max_sessions, 4),
            "accepting": len(state.sessions) < limits.max_sessions,
            "model": loaded.spec,
            "server": state.instance,
            "worker": "batched" if engine is not None else "round-robin",
        }

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
        from evostreaming.serve.chat import chat_completion, parse_request, stream_chat_completion

        bearer(request)
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, f"the body is not JSON ({exc})") from exc
        try:
            req = parse_request(body)
            if req.stream:
                lines = stream_chat_completion(loaded, req, loaded.spec, model_lock)
                first = await asyncio.to_thread(next, lines)  # the inputs are checked before a 200 goes out
                return StreamingResponse(_prepend(first, iterate_in_threadpool(lines)), media_type="text/event-stream")

            def run():
                with model_lock:
                    return chat_completion(loaded, req, loaded.spec)

            return await asyncio.to_thread(run)
        except ProtocolError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket):
        await RealtimeConnection(ws, state).run()

    app.state.sessions = state.sessions
    app.state.worker = state.worker
    app.state.server = state
    return app


async def _prepend(first, rest):
    yield first
    async for item in rest:
        yield item
