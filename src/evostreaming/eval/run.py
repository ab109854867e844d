"""``eval run`` as a library call: one self-checking config, the job's identity, and the run.

``EvalRunConfig`` checks every setting on construction (before a model loads); ``run_eval`` proves the
output folder writable, takes its lock, checks the job identity (resume only the same job), checks a
remote judge once, runs the protocol (failures recorded, retried on a re-run, and capped by
``max_failures``) and writes the report.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console

from evostreaming.eval.config import EvalRunConfig
from evostreaming.eval.protocol import TRAJECTORIES, TooManyFailures, merge_shards
from evostreaming.eval.remote import redact
from evostreaming.utils.distributed import on_rank_zero, ranks, shut_down
from evostreaming.utils.jobs import check_identity, ensure_writable, folder_lock, job


def run_eval(cfg: EvalRunConfig, output: Path, *, console: Console, overwrite: bool = False, timelines: int = 50):
    """Run and score; returns the summary (None on ranks other than 0 of a multi-process run).
    Raises ValueError subclasses for user errors (before any work where possible) and
    ``TooManyFailures`` when more than ``max_failures`` samples fail.

    Under ``accelerate launch`` (or ``torchrun``) each process takes the samples ``rank::world`` on
    its own device, appends them to ``trajectories.rank<r>.jsonl`` (resumable like the single file),
    and rank 0 merges the shards into ``trajectories.jsonl`` in sample order and writes the report:
    the result equals a one-process run."""
    from accelerate.utils import gather_object

    from evostreaming.eval.benchmarks import load_benchmark
    from evostreaming.eval.judges import make_judge
    from evostreaming.eval.protocol import check_videos_unchanged
    from evostreaming.eval.report import write_report

    samples = load_benchmark(cfg.benchmark, cfg.data, cfg.videos, cfg.fps, cfg.limit)
    r = ranks()
    rank, world, state = r.rank, r.world, r.state
    output = Path(output)
    remote = _remote_policy(cfg) if cfg.policy else None  # checked now: a server that is down stops the run
    identity = cfg.identity()
    if remote is not None and getattr(remote, "served", None):
        identity["served_model"] = remote.served  # a server now serving other weights is another job
    if world == 1:
        with job(output, "eval run", identity, overwrite=overwrite):
            check_videos_unchanged(output, samples)
            scorer = make_judge(cfg.judge, cache_dir=output / "judge-cache")
            if hasattr(scorer, "check"):
                scorer.check()  # a dead judge stops the run now, not after hours of streams
            _run_shard(cfg, samples, output, console, rank=0, world=1, state=None, total=len(samples), remote=remote)
            return write_report(output, scorer, timelines=timelines)
    holder = ExitStack()
    try:
        on_rank_zero(r, lambda: _open_job(holder, output, identity, overwrite))
        check_videos_unchanged(output, samples)
        with folder_lock(output, name=f".lock.rank{rank}") if rank else nullcontext():
            error = None
            try:
                shard = samples[rank::world]
                _run_shard(
                    cfg, shard, output, console, rank=rank, world=world, state=state, total=len(samples), remote=remote
                )
            except TooManyFailures as exc:
                error = str(exc)
            state.wait_for_everyone()
            errors = [e for e in gather_object([error]) if e]
        if rank != 0:
            return None
        merge_shards(output, [s.id for s in samples])
        if errors:
            raise TooManyFailures(errors[0])
        scorer = make_judge(cfg.judge, cache_dir=output / "judge-cache")
        if hasattr(scorer, "check"):
            scorer.check()
        return write_report(output, scorer, timelines=timelines)
    finally:
        holder.close()
        shut_down(r)


def _open_job(holder: ExitStack, output: Path, identity: dict, overwrite: bool) -> None:
    ensure_writable(output)
    holder.enter_context(folder_lock(output))
    check_identity(output, "eval run", identity, overwrite=overwrite)


def _remote_policy(cfg: EvalRunConfig):
    """The ``--policy`` server's policy, checked once (it then names the weights it serves)."""
    from evostreaming.eval.remote import RemoteSettings, make_remote_policy
    from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER
    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT

    settings = RemoteSettings(
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        marker=DEFAULT_SILENCE_MARKER,
        max_new_tokens=cfg.max_new_tokens,
        visual_tokens_per_frame=cfg.visual_tokens_per_frame,
        memory_window_s=cfg.memory_window,
    )
    policy = make_remote_policy(cfg.policy, settings)
    policy.check()  # a server that is down or refuses stops the run now, not stream by stream
    return policy


def _run_shard(
    cfg: EvalRunConfig,
    samples,
    output: Path,
    console: Console,
    *,
    rank: int,
    world: int,
    state,
    total: int,
    remote=None,
) -> None:
    from evostreaming.eval.policies import SessionPolicy, make_baseline
    from evostreaming.eval.protocol import run_protocol
    from evostreaming.eval.scoring import ScoreConfig
    from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER
    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT

    if cfg.baseline:
        policy = make_baseline(cfg.baseline)
    elif cfg.policy:
        policy = remote or _remote_policy(cfg)
    else:
        from evostreaming.models import load_model
        from evostreaming.stream.memory import MemoryPolicy
        from evostreaming.stream.session import SessionConfig

        placement = cfg.placement()
        if world > 1 and placement.resolved_device() == "cuda" and placement.device_map is None:
            placement = replace(placement, device=f"cuda:{state.local_process_index}")  # one GPU per process
        adapter = str(cfg.adapter) if cfg.adapter else None
        loaded = load_model(cfg.model, placement=placement, adapter_dir=adapter)

        def config_for(sample):
            return SessionConfig(
                silence_threshold=cfg.silence_threshold,
                max_new_tokens=cfg.max_new_tokens,
                memory=MemoryPolicy.for_stream(cfg.memory_window, sample.fps),
                visual_tokens_per_frame=cfg.visual_tokens_per_frame,
            )

        engine = None
        if cfg.batch_streams > 1:
            from evostreaming.stream.engine import BatchEngine, EngineThread

            engine = EngineThread(BatchEngine(loaded.model, max_batch_tokens=cfg.max_batch_tokens))
        policy = SessionPolicy(loaded, config_for, engine)
    cap = cfg.max_failures if cfg.max_failures is not None else max(3, math.ceil(0.05 * len(samples)))
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    info["policy"] = redact(cfg.policy)
    info["placement"] = cfg.placement().describe()
    info["processes"], info["n_samples"] = world, total
    # the protocol's parameters the paper does not publish, named here (docs/realstreameval.md)
    info["protocol"] = {
        "name": "RealStreamEval (this project's re-implementation)",
        "scoring": asdict(ScoreConfig()),
        "overall": "mean of regimes present; a regime is the mean of its tasks; a task the mean of its samples",
        "silence_marker": DEFAULT_SILENCE_MARKER,
        "system_prompt": DEFAULT_SYSTEM_PROMPT if cfg.model else None,
        "turn_format": asdict(policy.loaded.adapter.turns) if cfg.model and policy.loaded.adapter.turns else None,
        "remote_policy": redact(cfg.policy),
    }
    file = TRAJECTORIES if world == 1 else f"trajectories.rank{rank}.jsonl"
    try:
        run_protocol(
            samples,
            policy,
            output,
            console=console,
            max_pixels=cfg.max_pixels,
            run_info=info if rank == 0 else None,
            max_failures=cap,
            file=file,
            concurrency=cfg.batch_streams if cfg.model else cfg.concurrency,
        )
    finally:
        if getattr(policy, "engine", None) is not None:
            policy.engine.close()
