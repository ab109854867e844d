"""The RealStreamEval protocol runner: causal, frame-level, multi-turn.

For each sample, frames are read at the sample's fps until its duration; user turns are
delivered with the first frame at or after their time; the policy decides at every step.
One JSON line per sample is appended to ``trajectories.jsonl`` (flushed and synced), so a killed
run loses at most the sample in flight. A sample whose stream or model failed is recorded with its
``error`` and counts as failed, not finished: a re-run skips finished samples and retries failed
ones (the newest line of a sample is the one that counts).
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
from evostreaming.utils.errors import UserError
from evostreaming.utils.jobs import JobError, video_fingerprint, write_atomic, write_json
from evostreaming.utils.jsonl import append_jsonl, read_jsonl
from evostreaming.utils.progress import job_progress
from evostreaming.video.sources import VideoFileSource, VideoSourceError

TRAJECTORIES = "trajectories.jsonl"


class TooManyFailures(UserError, RuntimeError):
    exit_code = 1  # the job ran; its results are kept


def read_trajectories(out_dir: Path) -> list[dict]:
    """One row per sample: its newest line (a retried sample appends a new one), in first-seen order.
    The shards of a multi-process run (``trajectories.rank<r>.jsonl``) count, after the merged file."""
    latest: dict[str, dict] = {}
    out_dir = Path(out_dir)
    for path in [out_dir / TRAJECTORIES, *sorted(out_dir.glob("trajectories.rank*.jsonl"))]:
        for row in read_jsonl(path):
            latest.pop(row["id"], None)  # keep the order of last attempts
            latest[row["id"]] = row
    return list(latest.values())


def merge_shards(out_dir: Path, order: list[str]) -> None:
    """Fold the shard files of a multi-process run into ``trajectories.jsonl``, in sample order."""
    out_dir = Path(out_dir)
    shards = sorted(out_dir.glob("trajectories.rank*.jsonl"))
    if not shards:
        return
    rows = {r["id"]: r for r in read_trajectories(out_dir)}
    rank = {sid: i for i, sid in enumerate(order)}
    merged = sorted(rows.values(), key=lambda r: rank.get(r["id"], len(rank)))
    write_atomic(out_dir / TRAJECTORIES, "".join(json.dumps(r) + "\n" for r in merged))
    for shard in shards:
        shard.unlink()


def failure_reasons(rows: list[dict]) -> dict[str, int]:
    """Failed samples by reason (the error's first line, without the sample's own path)."""
    reasons: dict[str, int] = {}
    for r in rows:
        if r.get("error"):
            key = r["error"].splitlines()[0]
            reasons[key] = reasons.get(key, 0) + 1
    return dict(sorted(reasons.items(), key=lambda kv: -kv[1]))


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
            if "://" not in sample.video and not Path(sample.video).exists():
                raise VideoSourceError(f"{sample.video}: no such file; check the sample's video path or --videos")
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
    turns = sorted(sample.turns, key=lambda u: u.time)
    i = 0
    steps, error = [], None
    try:
        policy.reset(sample)  # a remote policy connects here: a refusal fails this stream, with its reason
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
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a model or policy failure: recorded and counted, the run goes on
        error = f"{type(exc).__name__} at step {len(steps)}: {exc}"
    finally:
        policy.end()
    return {
        "id": sample.id,
        "policy": policy.name,
        "sample": sample.model_dump(),
        "video_fingerprint": video_fingerprint(sample.video),  # a resume checks the video is still this one
        "steps": steps,
        "error": error,
    }


def check_videos_unchanged(out_dir: Path, samples: list[Sample]) -> None:
    """A resume keeps finished samples only while their videos are the ones they were streamed from: a
    replaced or re-encoded video (another size or content at either end) makes the run another job.
    Moving the same files elsewhere (another ``--videos``) is allowed. Rows written before the
    fingerprint was recorded are not checked."""
    by_id = {s.id: s for s in samples}
    changed = []
    for row in read_trajectories(out_dir):
        s = by_id.get(row["id"])
        if s is None or row.get("error") or not row.get("video_fingerprint"):
            continue
        now = video_fingerprint(s.video)
        if now is not None and now != row["video_fingerprint"]:
            changed.append(f"{s.id} ({s.video})")
    if changed:
        raise JobError(
            f"{out_dir}: the video of {len(changed)} finished sample(s) changed since it was streamed: "
            f"{', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}; resuming would mix results on two "
            "videos. Use a new --output, or --overwrite to discard that run."
        )


def run_protocol(
    samples: list[Sample],
    policy: Policy,
    out_dir: Path,
    *,
    console: Console | None = None,
    max_pixels: int | None = 448 * 448,
    run_info: dict | None = None,
    max_failures: int | None = None,
    file: str = TRAJECTORIES,
    concurrency: int = 1,
) -> list[dict]:
    """Run the samples not yet finished (failed ones again). More than ``max_failures`` failed
    samples in this run (None: no limit) stops it with ``TooManyFailures``, after recording them.
    ``concurrency`` > 1 runs that many streams at once (remote policies: see ``_rows``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = {row["id"]: row for row in read_trajectories(out_dir)}
    done = {i for i, row in previous.items() if not row.get("error")}
    todo = [s for s in samples if s.id not in done]
    if run_info is not None or file == TRAJECTORIES:
        write_json(out_dir / "run.json", {"policy": policy.name, "n_samples": len(samples), **(run_info or {})})
    console = console or Console(stderr=True)
    retry = sum(1 for s in todo if s.id in previous)
    if done or retry:
        console.print(
            f"resuming: {len(done)} samples finished in {out_dir / TRAJECTORIES}, {len(todo)} to go"
            + (f" ({retry} failed before: retrying them)" if retry else "")
        )
    path = out_dir / file
    failed, steps_done, start = 0, 0, time.perf_counter()
    with job_progress(console, f"RealStreamEval [{policy.name}]") as progress:
        task = progress.add_task("eval", total=len(todo), status="")
        for sample, row in _rows(policy, todo, max_pixels, concurrency):
            append_jsonl(path, [row], sync=True)
            steps_done += len(row["steps"])
            rate = f"{steps_done / max(time.perf_counter() - start, 1e-9):.2f} steps/s"
            streams = f"{concurrency} streams at once, " if concurrency > 1 else ""
            if row["error"]:
                failed += 1
            fails = f", [red]{failed} failed[/]" if failed else ""
            progress.update(task, status=f"{streams}{rate}{fails}")
            if row["error"] and max_failures is not None and failed > max_failures:
                raise TooManyFailures(
                    f"{failed} samples failed (more than --max-failures {max_failures}); the last: "
                    f"{sample.id}: {row['error']}. Fix the cause, then re-run into the same --output (with "
                    "the right --videos if that was it): finished samples are kept, failed ones are retried"
                )
            progress.advance(task)
    return read_trajectories(out_dir)


def _rows(policy: Policy, todo: list[Sample], max_pixels: int | None, concurrency: int):
    """(sample, row) as each stream finishes: in order with one stream; with N, N streams run at once
    on N copies of the policy (each its own history or connection) and rows come as they end."""
    if concurrency <= 1:
        for sample in todo:
            yield sample, run_sample(policy, sample, max_pixels=max_pixels)
        return
    import queue
    from concurrent.futures import ThreadPoolExecutor, as_completed

    idle: queue.SimpleQueue[Policy] = queue.SimpleQueue()
    for _ in range(concurrency):
        idle.put(policy.fork())

    def one(sample: Sample) -> dict:
        mine = idle.get()
        try:
            return run_sample(mine, sample, max_pixels=max_pixels)
        finally:
            idle.put(mine)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stream")
    try:
        futures = {pool.submit(one, s): s for s in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        # on an error or Ctrl-C: streams not started are dropped, the ones in flight finish (and are lost
        # unless written above); finished rows are already on disk, so a re-run resumes from them
        pool.shutdown(wait=True, cancel_futures=True)
