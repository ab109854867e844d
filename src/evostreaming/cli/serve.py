"""``evostreaming serve`` (the realtime server and its page) and ``evostreaming connect`` (its client)."""

from __future__ import annotations

from pathlib import Path

import typer

from evostreaming.cli.common import (
    AdapterOpt,
    AttnOpt,
    DeviceOpt,
    DtypeOpt,
    ModelArg,
    SilenceThresholdOpt,
    console,
    fail,
)


def serve(
    model: ModelArg,
    adapter: AdapterOpt = None,
    host: str = typer.Option("127.0.0.1", help="address to listen on; anything but loopback needs --api-key"),
    port: int = typer.Option(8000, help="port (0: any free one; the chosen one is printed)"),
    api_key: str | None = typer.Option(
        None, envvar="EVOSTREAMING_API_KEY", help="bearer token every /v1 route and the WebSocket require"
    ),
    max_sessions: int = typer.Option(4, help="concurrent sessions; more are refused (503 / close 1013)"),
    max_fps: float = typer.Option(4.0, help="frames per second a session may send; faster ones are dropped"),
    max_frame_bytes: int = typer.Option(2_000_000, help="largest encoded frame accepted"),
    max_frame_pixels: int = typer.Option(8_388_608, help="largest frame (width x height), read before decoding"),
    max_prompt_chars: int = typer.Option(8000, help="longest system prompt a session may set"),
    max_upload_bytes: int = typer.Option(500_000_000, help="largest upload accepted (POST /v1/uploads)"),
    idle_timeout: float = typer.Option(120.0, help="seconds without a message before a session is closed"),
    max_session_seconds: float = typer.Option(4 * 3600.0, help="longest a session may last"),
    memory_window: float = typer.Option(120.0, help="seconds of frames each session keeps (0 = unbounded)"),
    allow_url_host: list[str] = typer.Option([], help="a host sessions may ask the server to read (repeatable)"),
    upload_dir: Path = typer.Option(Path("runs/serve/uploads"), help="where uploads are written"),
    silence_threshold: SilenceThresholdOpt = None,
    max_new_tokens: int = typer.Option(48, help="longest response"),
    batch: bool = typer.Option(
        True, "--batch/--round-robin", help="one packed forward for all sessions with work, or one session at a time"
    ),
    max_batch_tokens: int = typer.Option(8192, help="new tokens per packed forward (--batch)"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    attn: AttnOpt = "auto",
) -> None:
    """Serve MODEL to browsers and clients: the page at /, the realtime WebSocket at /v1/realtime."""
    import uvicorn

    from evostreaming.models import ModelLoadError, load_model
    from evostreaming.models.placement import Placement
    from evostreaming.serve.app import create_app
    from evostreaming.serve.config import Limits, ServerConfig

    try:
        limits = Limits(
            max_sessions=max_sessions,
            max_frame_bytes=max_frame_bytes,
            max_frame_pixels=max_frame_pixels,
            max_prompt_chars=max_prompt_chars,
            max_fps=max_fps,
            idle_timeout_s=idle_timeout,
            max_session_s=max_session_seconds,
            max_upload_bytes=max_upload_bytes,
            memory_window_s=memory_window,
        )
        config = ServerConfig(
            host=host,
            port=port,
            api_key=api_key,
            allowed_url_hosts=tuple(allow_url_host),
            upload_dir=upload_dir,
            limits=limits,
            silence_threshold=silence_threshold,
            max_new_tokens=max_new_tokens,
            batch=batch,
            max_batch_tokens=max_batch_tokens,
        )
        placement = Placement(device=device, dtype=dtype, attn=attn)
    except ValueError as exc:
        fail(str(exc))
    try:
        loaded = load_model(model, placement=placement, adapter_dir=str(adapter) if adapter else None)
    except (ModelLoadError, ValueError) as exc:
        fail(str(exc))
    console.print(f"evostreaming serve: {model} ({loaded.adapter.family}); page at /, realtime at /v1/realtime")
    # uvicorn logs "Uvicorn running on http://HOST:PORT" once the socket is bound (clients may wait for it)
    uvicorn.run(create_app(loaded, config), host=host, port=port, log_level="info", ws_max_size=16 * 2**20)


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

    from evostreaming.serve.client import stream_source
    from evostreaming.video.sources import VideoSourceError, open_source

    if at and len(at) != len(question):
        fail(f"got {len(question)} --question but {len(at)} --at; give one time per question or none")
    questions = dict(zip(at or [0.0] * len(question), question, strict=True))

    def show(event: dict) -> None:
        kind = event.get("type")
        if kind == "response.done":
            console.print(f"[bold]{_clock(event.get('time', 0))}[/] {event['text']}")
        elif kind == "conversation.item.created":
            console.print(f"[dim]you: {event['text']}[/]")
        elif kind in ("error", "frame.dropped"):
            console.print(f"[yellow]{kind}: {event.get('message', event.get('reason'))}[/]")

    try:
        frames = open_source(source, fps=fps)
        if max_frames is not None:
            frames = itertools.islice(frames, max_frames)
        events = stream_source(url, frames, questions=questions, api_key=api_key, fps=fps, on_event=show)
    except VideoSourceError as exc:
        fail(str(exc))
    except (OSError, ConnectionError) as exc:
        fail(f"{url}: {exc}")
    stats = next((e for e in reversed(events) if e.get("type") == "session.stats"), {})
    console.print(f"[dim]{stats.get('decisions', 0)} frames decided, {stats.get('responses', 0)} responses[/]")


def _clock(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:05.2f}"
