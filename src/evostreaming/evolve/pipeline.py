"""EvoStreaming rounds end to end: taxonomy -> questions -> relevance -> roll-out -> standardize -> LoRA.

Round i uses M(i) (the base model with the round-(i-1) adapter merged) and writes
``OUTPUT/round-<i>/`` with every stage's JSONL, ``stage_report.json``, ``train.jsonl`` and the
PEFT adapter in ``adapter/``. Re-running resumes inside the first unfinished stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console

from evostreaming.evolve.backends import LocalBackend, OpenAIBackend
from evostreaming.evolve.pool import PoolVideo, load_frames
from evostreaming.evolve.prompts import load_prompts
from evostreaming.evolve.stages import (
    StageContext,
    balance,
    stage_questions,
    stage_relevance,
    stage_rollout,
    stage_standardize,
    stage_taxonomy,
)
from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER
from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT
from evostreaming.train.lora import LoraTrainConfig, train_lora
from evostreaming.utils.distributed import Ranks, on_rank_zero
from evostreaming.utils.errors import UserError
from evostreaming.utils.jobs import write_json


@dataclass
class EvolveConfig:
    n_samples: int = 1000  # trajectories per round
    questions_per_video: int = 2
    question_temperature: float = 1.0
    rounds: int = 1
    seed: int = 0
    batch_size: int = 16  # generation batch
    random_relevance: bool = False  # ablation: replace the model's relevance labels by random ones
    silence_marker: str = DEFAULT_SILENCE_MARKER
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    prompts_path: str | None = None
    lora: LoraTrainConfig = field(default_factory=LoraTrainConfig)
    # generation on an OpenAI-compatible server (vLLM/SGLang) instead of the local model; the
    # served name may contain {round} (e.g. a LoRA module per round: "evo-r{round}")
    server_url: str | None = None
    server_model: str | None = None
    server_concurrency: int = 16
    # ask questions about videos of these task types at the first step (their evidence comes
    # later, as in a "tell me when ..." request); empty = a random step for every question
    ask_at_start_types: tuple[str, ...] = ()
    # self-replay: add this fraction (x trajectories) of the model's own offline roll-out answers
    # to the training file, so the adapter keeps offline behaviour (0 = the paper's recipe)
    replay: float = 0.0
    # self-replay of the model's own task types, questions and relevance labels (x trajectories),
    # so that the next round's model can still generate and annotate
    replay_annotations: float = 0.0
    # where the local model generates (stages 1-4) and in what precision; float32 by default so that
    # the stage outputs do not depend on the device's bf16 kernels (another precision = another job)
    device: str = "auto"  # auto: this process's GPU when CUDA is present, else the CPU
    dtype: str = "float32"
    attn: str = "auto"

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError (with the fix) for settings that cannot work, before any work is done."""
        for flag, value in (
            ("--n-samples", self.n_samples),
            ("--rounds", self.rounds),
            ("--questions-per-video", self.questions_per_video),
            ("--concurrency", self.server_concurrency),
            ("--generation-batch-size", self.batch_size),
        ):
            if value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        for flag, value in (("--replay", self.replay), ("--replay-annotations", self.replay_annotations)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{flag} must be in [0, 1] (a fraction of the trajectories), got {value}")
        known = load_prompts(self.prompts_path).task_types
        for tt in self.ask_at_start_types:
            if tt not in known:
                raise ValueError(f"--ask-at-start {tt!r} is not a task type; use one of: {', '.join(known)}")
        self.placement("cpu")  # --device, --dtype and --attn are checked here (e.g. cuda without CUDA)
        if self.server_url and not self.server_model:
            raise ValueError("--server needs --server-model: the model name the server serves (see GET /v1/models)")
        if self.server_model and not self.server_url:
            raise ValueError("--server-model names a model on a --server; without --server the local --model generates")
        if self.server_url and self.rounds > 1 and "{round}" not in self.server_model:
            raise ValueError(
                f"--rounds {self.rounds} with --server: round i must generate with M(i); serve one model (or LoRA "
                "module) per round and name it with a {round} placeholder, e.g. --server-model 'evo-r{round}' "
                f"(got {self.server_model!r})"
            )

    def placement(self, auto_device: str):
        from evostreaming.models.placement import Placement

        device = auto_device if self.device == "auto" else self.device
        return Placement(device=device, dtype=self.dtype, attn=self.attn)

    def backend(self, round_index: int, loaded) -> LocalBackend | OpenAIBackend:
        if self.server_url:
            name = (self.server_model or "").format(round=round_index)
            return OpenAIBackend(self.server_url, name, concurrency=self.server_concurrency)
        return LocalBackend(loaded.model, loaded.processor, batch_size=self.batch_size)


def evolve_identity(model_spec: str, pool: list[PoolVideo], cfg: EvolveConfig) -> dict:
    """What an ``evolve run`` folder's results depend on: the model's weights, the pool (its ids and,
    for files, their sizes) and every setting."""
    import hashlib

    from evostreaming.models.loading import weights_fingerprint
    from evostreaming.models.specs import parse_spec

    h = hashlib.sha256()
    for v in pool:
        size = Path(v.id).stat().st_size if not v.id.startswith("world:") and Path(v.id).exists() else -1
        h.update(f"{v.id}|{v.fps}|{size}\n".encode())
    return {
        "model": model_spec,
        "model_weights": weights_fingerprint(parse_spec(model_spec).folder()),
        "pool": {"videos": len(pool), "sha256": h.hexdigest()},
        "config": {k: v for k, v in asdict(cfg).items() if k != "device"},  # where it runs is not what it makes
    }


class EmptyRoundError(UserError, RuntimeError):
    pass


def _check_round_has_data(out: Path, round_index: int) -> None:
    """A round whose stages kept nothing cannot train: say which stage lost everything and where
    its raw outputs are, instead of failing later on an empty training file."""
    report = json.loads((out / "stage_report.json").read_text())
    if report.get("standardize", {}).get("conversations", 0):
        return
    tax, q = report.get("taxonomy", {}), report.get("questions", {})
    if not tax.get("videos"):
        why = "the taxonomy stage saw no readable video"
    elif tax.get("unparsed") == tax.get("videos"):
        why = f"the taxonomy stage could not parse any of {tax['videos']} answers (see taxonomy.jsonl, 'raw')"
    elif not q.get("questions"):
        why = (
            f"the questions stage kept no question ({q.get('malformed', 0)} malformed, {q.get('duplicates', 0)} "
            "duplicates; see questions.jsonl, 'raw'). Hand-written questions can be put in questions.jsonl's "
            "'questions' lists and the same command re-run"
        )
    else:
        why = "the roll-out produced no trajectory (see stage_report.json)"
    raise EmptyRoundError(f"round {round_index} produced no training conversations: {why}; folder {out}")


def run_round(
    model_spec: str,
    adapter_dir: Path | None,
    pool: list[PoolVideo],
    out: Path,
    round_index: int,
    cfg: EvolveConfig,
    console: Console,
    progress: Callable | None = None,
    ranks: Ranks | None = None,
) -> Path:
    import torch

    from evostreaming.models.loading import load_model

    r = ranks or Ranks()
    out.mkdir(parents=True, exist_ok=True)
    if r.main:
        (out / "round.json").write_text(
            json.dumps(
                {
                    "model": model_spec,
                    "adapter": str(adapter_dir) if adapter_dir else None,
                    "round": round_index,
                    "config": asdict(cfg),
                },
                indent=1,
                default=str,
            )
        )
    final_adapter = out / "adapter"
    if (final_adapter / "adapter_config.json").exists():
        console.print(f"round {round_index}: adapter already trained ({final_adapter}), skipping")
        return final_adapter
    placement = cfg.placement("cuda" if torch.cuda.is_available() else "cpu")
    placement = replace(placement, device=r.local_device(placement.device))  # one GPU per process
    adapter = str(adapter_dir) if adapter_dir else None
    loaded = load_model(model_spec, placement=placement, adapter_dir=adapter)
    if r.main:  # what stages 1-4 actually ran on, beside the settings
        info = json.loads((out / "round.json").read_text())
        weights = next(loaded.model.parameters())
        info["generation"] = {"device": str(weights.device), "dtype": str(weights.dtype).replace("torch.", "")}
        write_json(out / "round.json", info)
    prompts = load_prompts(cfg.prompts_path)
    name = model_spec + (f"+{adapter_dir}" if adapter_dir else "")
    ctx = StageContext(
        cfg.backend(round_index, loaded),
        prompts,
        out,
        round_index,
        name,
        seed=cfg.seed + 1000 * round_index,
        chunk=cfg.batch_size,
        progress=progress,
        ranks=r,
    )
    videos = {v.id: v for v in pool}
    taxonomy = stage_taxonomy(ctx, pool)
    per_type = -(-cfg.n_samples // (len(prompts.task_types) * cfg.questions_per_video))
    selected = balance([r for r in taxonomy if r["task_type"]], prompts.task_types, per_type, ctx.seed)
    if r.main:
        (out / "pool_balanced.json").write_text(json.dumps([row["video"] for row in selected]))
    questions = stage_questions(ctx, selected, videos, cfg.questions_per_video, cfg.question_temperature)
    relevance = stage_relevance(ctx, questions, videos)
    at_start = {row["video"] for row in selected if row["task_type"] in cfg.ask_at_start_types}
    rollouts = stage_rollout(ctx, relevance, videos, cfg.n_samples, cfg.silence_marker, cfg.random_relevance, at_start)
    train_file = out / "train.jsonl"
    if r.main:  # cheap and deterministic: one process writes it, the others wait
        train_file = stage_standardize(
            ctx,
            rollouts,
            cfg.system_prompt,
            cfg.silence_marker,
            replay=cfg.replay,
            replay_annotations=cfg.replay_annotations,
        )
    r.wait()
    _check_round_has_data(out, round_index)
    # LoRA on the current model M(i) (base + merged previous adapters) -> M(i+1)
    loaded.model.train()
    return train_lora(name, train_file, out, cfg.lora, console=console, loaded=loaded, load_frames=load_frames)


def run_evolution(
    model_spec: str,
    pool: list[PoolVideo],
    output: Path,
    cfg: EvolveConfig,
    console: Console | None = None,
    progress: Callable | None = None,
    ranks: Ranks | None = None,
) -> list[Path]:
    """Every round; under ``accelerate launch`` the generating stages are shared out between the
    processes (``evolve.stages.run_stage``) and LoRA trains data-parallel."""
    console = console or Console(stderr=True)
    r = ranks or Ranks()
    cfg.check()
    adapters: list[Path] = []
    current: Path | None = None
    for i in range(1, cfg.rounds + 1):
        # later rounds start from the previous round's model: base + adapter(s) merged
        spec = model_spec if current is None else str(output / f"round-{i - 1}" / "merged")
        if current is not None and not (Path(spec) / "config.json").exists():
            base = model_spec if i == 2 else str(output / f"round-{i - 2}" / "merged")
            on_rank_zero(r, lambda base=base, current=current, spec=spec: _merge(base, current, Path(spec)))
        current = run_round(spec, None, pool, output / f"round-{i}", i, cfg, console, progress, r)
        adapters.append(current)
    return adapters


def _merge(base_spec: str, adapter_dir: Path, out: Path) -> None:
    from evostreaming.models.loading import load_model

    loaded = load_model(base_spec, dtype="float32", adapter_dir=str(adapter_dir))
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.processor.save_pretrained(out)
