"""``RealtimeClient``: stream frames to ``evostreaming serve`` from Python and iterate over its events.

    async with RealtimeClient("ws://127.0.0.1:8000/v1/realtime", api_key=KEY) as client:
        await client.update(fps=0.5)
        await client.send_frame(image, seq=0, time=0.0)
        await client.ask("Tell me when the red square appears.")
        async for event in client.events(): ...

``stream_source`` (sync) streams a file, a folder or a camera at its fps and returns every event.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable

from PIL import Image

from evostreaming.serve.protocol import AUTH_PREFIX, PROTOCOL, pack_frame


class HandshakeError(ConnectionError):
    """The server would not open a session: the reason, and what to do about it."""


def realtime_url(url: str) -> str:
    """The realtime URL a user most likely meant by ``url`` (an http:// address of the server, a bare
    host:port): said in the error that refuses it."""
    rest = url.split("://", 1)[1] if "://" in url else url
    secure = url.startswith(("https://", "wss://"))
    host = rest.split("/", 1)[0] or "127.0.0.1:8000"
    return f"{'wss' if secure else 'ws'}://{host}/v1/realtime"


def subprotocols(api_key: str | None) -> list[str]:
    """The WebSocket subprotocols a client offers: the protocol, and the key (browsers cannot set headers)."""
    return [PROTOCOL] + ([AUTH_PREFIX + api_key] if api_key else [])


def session_opened(
    url: str,
    first: dict | None,
    close=None,
    full_hint: str = "try later, or start the server with a higher --max-sessions",
) -> dict:
    """The realtime handshake's one check, shared by ``RealtimeClient`` (``connect``) and the ``realtime:``
    evaluation policy: ``first`` is the server's first event (or None when the socket closed first, with
    ``close`` its close frame). Returns ``session.created``; raises ``HandshakeError`` with the cause."""
    if first is not None and first.get("type") == "session.created":
        return first
    code = getattr(close, "code", None)
    if code == 1008:
        raise HandshakeError(f"{url}: wrong or missing API key (api_key=KEY, --api-key or EVOSTREAMING_API_KEY)")
    if code == 1013 or (first or {}).get("code") == "server_full":
        message = (first or {}).get("message") or getattr(close, "reason", "") or "server full"
        raise HandshakeError(f"{url}: {message}; {full_hint}")
    if first is None:
        raise HandshakeError(f"{url}: the server closed the connection before opening a session ({close})")
    raise HandshakeError(f"{url}: {first.get('message', first)}")


class RealtimeClient:
    def __init__(self, url: str, api_key: str | None = None, *, open_timeout: float = 30.0):
        self.url, self.api_key, self.open_timeout = url, api_key, open_timeout
        self.ws = None
        self.session: dict = {}

    async def __aenter__(self) -> RealtimeClient:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        self.ws = await connect(
            self.url, subprotocols=subprotocols(self.api_key), open_timeout=self.open_timeout, max_size=None
        )
        try:
            first, close = await self.next_event(), None
        except ConnectionClosed as exc:
            first, close = None, exc.rcvd
        if first is None or first.get("type") != "session.created":
            await self.ws.close()
        self.session = session_opened(self.url, first, close)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, event: dict) -> None:
        await self.ws.send(json.dumps(event))

    async def update(self, **session) -> None:
        await self.send({"type": "session.update", "session": session})

    async def ask(self, text: str) -> None:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": "conversation.item.create", "item": item})

    async def send_frame(self, image, seq: int, time: float, quality: int = 90) -> None:
        if not isinstance(image, Image.Image):
            image = Image.fromarray(image)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        await self.ws.send(pack_frame(seq, time, buf.getvalue()))

    async def close_session(self) -> None:
        await self.send({"type": "session.close"})

    async def next_event(self) -> dict:
        return json.loads(await self.ws.recv())

    async def events(self) -> AsyncIterator[dict]:
        """Every event until the server ends the session (``session.stats``) or closes."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                event = await self.next_event()
                yield event
                if event.get("type") == "session.stats":
                    return
        except ConnectionClosed:
            return


async def stream_frames(
    url: str,
    frames,
    *,
    questions: dict[float, str] | None = None,
    api_key: str | None = None,
    fps: float = 0.5,
    realtime: bool = True,
    on_event: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Send ``frames`` (``video.sources.Frame``-like: ``.time``, ``.image``) at their stream times, each
    question before the first frame at or after its time; wait for one decision (or drop) per frame."""
    events: list[dict] = []
    pending = dict(sorted((questions or {}).items()))
    async with RealtimeClient(url, api_key) as client:
        await client.update(fps=fps)
        answered: set[int] = set()
        state = {"sent": 0, "all_sent": False}
        all_answered = asyncio.Event()

        async def reader():
            async for event in client.events():
                events.append(event)
                if on_event:
                    on_event(event)
                kind = event.get("type")
                # a frame is settled by its drop, its silent decision, or the end of its reply
                if (
                    kind == "frame.dropped"
                    or kind == "response.done"
                    or (kind == "frame.decision" and event["action"] == "silent")
                ):
                    answered.add(event["seq"])
                if state["all_sent"] and len(answered) >= state["sent"]:
                    all_answered.set()
            all_answered.set()  # the server ended the session

        task = asyncio.create_task(reader())
        loop = asyncio.get_running_loop()
        start = loop.time()
        last_sent = -1e9
        source = iter(frames)
        seq = -1
        # each read in a worker thread: a camera or RTSP source that blocks for its next frame must not
        # stall the event loop, which meanwhile receives the server's decisions and replies
        while (frame := await asyncio.to_thread(next, source, None)) is not None:
            seq += 1
            for t in [t for t in pending if t <= frame.time]:
                await client.ask(pending.pop(t))
            if realtime:  # the stream's own pace, and never faster than the session's fps
                due = max(start + frame.time, last_sent + 1.0 / fps)
                await asyncio.sleep(max(0.0, due - loop.time()))
            await client.send_frame(frame.image, seq, frame.time)
            last_sent = loop.time()
            state["sent"] += 1
        state["all_sent"] = True
        if len(answered) >= state["sent"]:
            all_answered.set()
        await all_answered.wait()
        await client.close_session()
        await task
    return events


def stream_source(url: str, source, **kwargs) -> list[dict]:
    """The sync wrapper: ``source`` is anything ``video.sources.open_source`` reads, or a list of frames."""
    from evostreaming.video.sources import open_source

    frames = open_source(source, fps=kwargs.get("fps", 0.5)) if isinstance(source, str | int) else source
    return asyncio.run(stream_frames(url, frames, **kwargs))
