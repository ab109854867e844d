"""``evostreaming serve`` (the realtime server and its page) and ``evostreaming connect`` (its client)."""

from __future__ import annotations

import math

import typer

from evostreaming.cli.common import (
    AdapterOpt,
    AttnOpt,
    DeviceOpt,
    DtypeOpt,
    ModelArg,
    config_options,
    console,
    fail,
)
from evostreaming.serve.config import Limits, ServerConfig


@config_options(Limits, into="limits")
@config_options(ServerConfig, into="config")
def serve(
    model: ModelArg,
    adapter: AdapterOpt = None,
    allow_url_host: list[str] = typer.Option([], help="a host sessions may ask the server to read (repeatable)"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    attn: AttnOpt = "auto",
    config: ServerConfig = None,
    limits: Limits = None,
) -> None:
    """Serve MODEL to browsers and clients: the page at /, the realtime WebSocket at /v1/realtime."""
    import dataclasses

    import uvicorn

    from evostreaming.models import ModelLoadError, load_model
    from evostreaming.models.placement import Placement
    from evostreaming.serve.app import create_app

    try:  # the flags come from the configs' fields (their help and their checks live there)
        config = dataclasses.replace(config, limits=limits, allowed_url_hosts=tuple(allow_url_host))
        placement = Placement(device=device, dtype=dtype, attn=attn)
        config.check_can_listen()
    except ValueError as exc:
        fail(str(exc))
    try:
        loaded = load_model(model, placement=placement, adapter_dir=str(adapter) if adapter else None)
    except (ModelLoadError, ValueError) as exc:
        fail(str(exc))
    console.print(f"evostreaming serve: {model} ({loaded.adapter.family}); page at /, realtime at /v1/realtime")
    # uvicorn logs "Uvicorn running on http://HOST:PORT" once the socket is bound (clients may wait for it)
    uvicorn.run(
        create_app(loaded, config), host=config.host, port=config.port, log_level="info", ws_max_size=16 * 2**20
    )


def connect(
    url: str = typer.Argument(..., help="ws://HOST:PORT/v1/realtime"),
    source: str = typer.Argument(..., help="a video file, a folder of images, a camera index or an rtsp:// URL"),
    question: list[str] = typer.Option([], help="a question (repeatable)"),
    at: list[float] = typer.Option([], help="stream time of each --question (default 0)"),
    fps: float = typer.Option(0.5),
    max_frames: int | None = typer.Option(None, help="stop after this many frames (for cameras and URLs)"),
    api_key: str | None = typer.Option(None, envvar="EVOSTREAMING_API_KEY"),
) -> None:
    """Stream SOURCE to a running `evostreaming serve` and print its responses as they happen."""
    import itertools

    from rich.markup import escape

    from evostreaming.serve.client import realtime_url, stream_source
    from evostreaming.video.sources import LiveSource, VideoSourceError, open_source

    if not url.startswith(("ws://", "wss://")):
        fail(f"{url}: not a WebSocket URL; use {realtime_url(url)} (ws:// or wss://, ending in /v1/realtime)")
    if at and len(at) != len(question):
        fail(f"got {len(question)} --question but {len(at)} --at; give one time per question or none")
    if not (math.isfinite(fps) and fps > 0):
        fail(f"--fps must be a positive number of frames per second; got {fps:g}")
    if max_frames is not None and max_frames < 1:
        fail(f"--max-frames is a number of frames >= 1 (omit it to stream the whole source); got {max_frames}")
    if any(not (math.isfinite(t) and t >= 0) for t in at):
        fail(f"--at takes stream times in seconds >= 0; got {', '.join(f'{t:g}' for t in at)}")
    questions = dict(zip(at or [0.0] * len(question), question, strict=True))

    def show(event: dict) -> None:
        kind = event.get("type")
        if kind == "response.done":
            console.print(f"[bold]{_clock(event.get('time', 0))}[/] {escape(event['text'])}")
        elif kind == "conversation.item.created":
            console.print(f"[dim]you: {escape(event['text'])}[/]")
        elif kind in ("error", "frame.dropped"):
            console.print(f"[yellow]{kind}: {escape(str(event.get('message', event.get('reason'))))}[/]")

    try:
        frames = open_source(source, fps=fps)
        if isinstance(frames, LiveSource):
            frames.probe()  # a missing camera or a dead host, before a session is opened on the server
        if max_frames is not None:
            frames = itertools.islice(frames, max_frames)
        events = stream_source(url, frames, questions=questions, api_key=api_key, fps=fps, on_event=show)
    except VideoSourceError as exc:
        fail(str(exc))
    except (OSError, ConnectionError) as exc:
        fail(f"{url}: {exc}; is `evostreaming serve` running there?")
    stats = next((e for e in reversed(events) if e.get("type") == "session.stats"), {})
    console.print(f"[dim]{stats.get('decisions', 0)} frames decided, {stats.get('responses', 0)} responses[/]")


def _clock(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:05.2f}"
