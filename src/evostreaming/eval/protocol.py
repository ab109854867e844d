"""The RealStreamEval protocol runner: causal, frame-level, multi-turn.

For each sample, frames are read at the sample's fps until its duration; user turns are
delivered with the first frame at or after their time; the policy decides at every step.
One JSON line per finished sample is appended to ``trajectories.jsonl`` (flushed and synced),
so a killed run loses at most the sample in flight, and a re-run skips finished samples.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from evostreaming.eval.policies import Policy
from evostreaming.eval.schema import Sample
from evostreaming.utils.jsonl import append_jsonl, read_jsonl
from evostreaming.utils.progress import job_progress
from evostreaming.video.sources import VideoFileSource, VideoSourceError

TRAJECTORIES = "trajectories.jsonl"


def read_trajectories(out_dir: Path) -> list[dict]:
    return read_jsonl(Path(out_dir) / TRAJECTORIES)


def _video_duration(path: str) -> float | None:
    try:
        return VideoFileSource(path).duration()
    except VideoSourceError:
        return None


def _steps(sample: Sample, needs_frames: bool, max_pixels: int | None) -> Iterator[tuple[int, float, object]]:
    limit = sample.duration if sample.duration is not None else math.inf
    if not needs_frames:
        # Step times without decoding: the grid k/fps up to the stream's end.
        end = min(limit, _video_duration(sample.video) or limit)
        if math.isinf(end):
            raise VideoSourceError(f"{sample.video}: cannot tell the stream length; set 'duration' in the sample")
        n = max(1, math.ceil(end * sample.fps - 1e-9))
        for k in range(n):
            yield k, k / sample.fps, None
        return
    for k, frame in enumerate(VideoFileSource(sample.video, fps=sample.fps, max_pixels=max_pixels)):
        if frame.time >= limit:
            return
        yield k, frame.time, frame.image


def run_sample(policy: Policy, sample: Sample, max_pixels: int | None = 448 * 448) -> dict:
    policy.reset(sample)
    turns = sorted(sample.turns, key=lambda u: u.time)
    i = 0
    steps, error = [], None
    try:
        for k, t, image in _steps(sample, policy.needs_frames, max_pixels):
            texts = []
            # Deliver turns on the step grid (k/fps), so decoded timestamps a hair past a tick do
            # not delay a question that is due at that tick.
            while i < len(turns) and turns[i].time <= max(t, k / sample.fps) + 1e-6:
                texts.append(turns[i].text)
                i += 1
            user_text = "\n".join(texts) if texts else None
            t0 = time.perf_counter()
            out = policy.step(k, t, image, user_text)
            steps.append(
                {
                    "step": k,
                    "time": round(t, 4),
                    "action": out.action,
                    "text": out.text,
                    "tokens": out.tokens,
                    "latency_s": round(time.perf_counter() - t0, 5),
                    "user_text": user_text,
                }
            )
    except VideoSourceError as exc:
        error = str(exc)
    return {"id": sample.id, "policy": policy.name, "sample": sample.model_dump(), "steps": steps, "error": error}


def run_protocol(
    samples: list[Sample],
    policy: Policy,
    out_dir: Path,
    *,
    console: Console | None = None,
    max_pixels: int | None = 448 * 448,
    run_info: dict | None = None,
) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {row["id"] for row in read_trajectories(out_dir)}
    todo = [s for s in samples if s.id not in done]
    info = {"policy": policy.name, "n_samples": len(samples), **(run_info or {})}
    (out_dir / "run.json").write_text(json.dumps(info, indent=2))
    console = console or Console(stderr=True)
    if done:
        console.print(f"resuming: {len(done)} samples already in {out_dir / TRAJECTORIES}, {len(todo)} to go")
    path = out_dir / TRAJECTORIES
    with job_progress(console, f"RealStreamEval [{policy.name}]") as progress:
        task = progress.add_task("eval", total=len(todo), status="")
        for sample in todo:
            append_jsonl(path, [run_sample(policy, sample, max_pixels=max_pixels)], sync=True)
            progress.advance(task)
    return read_trajectories(out_dir)
