"""``evostreaming stream``: watch a file, camera or network stream live."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from evostreaming.cli.common import (
    AdapterOpt,
    AttnOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelArg,
    SilenceThresholdOpt,
    VisualTokensOpt,
    console,
    err,
    fail,
)


def stream(
    model: ModelArg,
    source: str = typer.Argument(..., help="video file, image folder, camera index, or rtsp/http URL"),
    fps: float = typer.Option(0.5, help="frames per second fed to the model"),
    query: list[str] = typer.Option([], "--query", help="user text; repeat for several turns"),
    query_at: list[float] = typer.Option([], "--query-at", help="stream time (s) of each --query; default 0"),
    memory_window: float = typer.Option(
        0.0, help="keep only the last SECONDS of frames in the KV cache (0 = unbounded)"
    ),
    max_text_turns: int = typer.Option(64, help="bounded mode: text turns kept after their frames are evicted"),
    jsonl: Path | None = typer.Option(None, help="write every step (time, action, text, latency) here"),
    silence_marker: str = typer.Option("<silent>", help="the assistant's 'nothing to say' reply"),
    silence_threshold: SilenceThresholdOpt = None,
    system_prompt: str | None = typer.Option(None, help="override the system prompt ({marker} is substituted)"),
    max_new_tokens: int = typer.Option(64, help="longest response, in tokens"),
    max_pixels: int = typer.Option(448 * 448, help="resize frames to at most this many pixels (0 = keep their size)"),
    max_steps: int | None = typer.Option(None, help="stop after this many frames (for endless sources)"),
    adapter: AdapterOpt = None,
    visual_tokens_per_frame: VisualTokensOpt = 128,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    attn: AttnOpt = "auto",
    device_map: DeviceMapOpt = None,
    trust_remote_code: bool = typer.Option(
        False, help="run the checkpoint's own Python code from the hub (never by default; read it first)"
    ),
) -> None:
    """Watch SOURCE with MODEL; print each response with its stream time as it happens."""
    from evostreaming.models import ModelLoadError, load_model
    from evostreaming.models.placement import Placement
    from evostreaming.stream.display import StreamDisplay
    from evostreaming.stream.memory import MemoryPolicy
    from evostreaming.stream.runner import UserTurn, run_stream
    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT, SessionConfig, StreamingSession
    from evostreaming.utils.jobs import ensure_writable
    from evostreaming.video.sources import (
        LiveSource,
        VideoFileSource,
        VideoSourceError,
        check_max_pixels,
        open_source,
    )

    if not (math.isfinite(fps) and fps > 0):
        fail(f"--fps must be a positive number of frames per second; got {fps}")
    if not (math.isfinite(memory_window) and memory_window >= 0):
        fail(f"--memory-window is seconds >= 0 (0 = unbounded); got {memory_window}")
    placement = Placement(device=device, dtype=dtype, attn=attn, device_map=device_map)  # checked here
    if max_steps is not None and max_steps < 1:
        fail(f"--max-steps must be >= 1; got {max_steps}")
    if query_at and len(query_at) != len(query):
        fail(f"got {len(query)} --query but {len(query_at)} --query-at; give one time per query or none")
    times = list(query_at) if query_at else [0.0] * len(query)
    if any(not (math.isfinite(t) and t >= 0) for t in times):
        fail(f"--query-at takes stream times in seconds >= 0; got {', '.join(f'{t:g}' for t in times)}")
    turns = [UserTurn(t, q) for t, q in zip(times, query, strict=True)]
    try:
        check_max_pixels(max_pixels)
    except ValueError as exc:
        fail(str(exc))
    if jsonl is not None:
        ensure_writable(jsonl.parent, "--jsonl")  # before the model loads, not after
        if jsonl.is_dir():
            fail(f"--jsonl {jsonl} is a folder; give a file name in it (e.g. {jsonl / 'steps.jsonl'})")
    try:
        frames = open_source(source, fps=fps, max_pixels=max_pixels)
        length = frames.duration() if isinstance(frames, VideoFileSource) else None
        if isinstance(frames, LiveSource):
            frames.probe()  # a missing camera or a dead host, before minutes of model loading
    except VideoSourceError as exc:
        fail(str(exc))
    late = [t for t in turns if length and t.time > length + 1e-6]
    if late:  # a question the stream never reaches would silently never be asked
        fail(
            f"--query-at {late[0].time:g} s is after the end of {source} ({length:.1f} s long); ask it within the video"
        )
    config = SessionConfig(
        system_prompt=system_prompt or DEFAULT_SYSTEM_PROMPT,
        silence_marker=silence_marker,
        silence_threshold=silence_threshold,
        max_new_tokens=max_new_tokens,
        memory=MemoryPolicy.for_stream(memory_window, fps, max_text_turns),
        visual_tokens_per_frame=visual_tokens_per_frame,
    )
    try:
        loaded = load_model(
            model,
            placement=placement,
            adapter_dir=str(adapter) if adapter else None,
            trust_remote_code=trust_remote_code,
        )
    except (ModelLoadError, ValueError) as exc:
        fail(str(exc))
    session = StreamingSession(loaded.model, loaded.processor, loaded.adapter, config)
    with StreamDisplay(console, title=f"{model} on {source}") as display:
        try:
            results = run_stream(session, frames, turns, on_step=display.update, jsonl=jsonl, max_steps=max_steps)
        except VideoSourceError as exc:
            fail(str(exc))
    reached = results[-1].time if results else 0.0
    never = [t for t in turns if t.time > reached + 1e-6]
    if never:  # an endless source stopped (--max-steps, Ctrl-C, the camera ended) before these times
        err.print(
            f"[yellow]not asked:[/] {len(never)} question(s) due after the stream stopped at {reached:.1f} s "
            f"(the first at {never[0].time:g} s)"
        )
    n_resp = sum(r.action == "respond" for r in results)
    err.print(f"{len(results)} steps, {n_resp} responses" + (f"; steps written to {jsonl}" if jsonl else ""))
