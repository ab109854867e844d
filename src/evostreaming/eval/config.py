"""``eval run``'s settings: one self-checking config whose fields are also the command's flags (their help
lives here; ``cli.common.config_options`` makes the options), light to import (no torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evostreaming.eval.benchmarks import benchmark_help
from evostreaming.eval.policies import BASELINES
from evostreaming.models.flags import HELP as PLACEMENT_HELP
from evostreaming.models.flags import MODEL_HELP
from evostreaming.utils.jobs import file_digest
from evostreaming.utils.openai_spec import redact


@dataclass
class EvalRunConfig:
    data: Path = field(metadata={"help": "benchmark file or folder"})
    benchmark: str = field(default="jsonl", metadata={"help": benchmark_help()})
    videos: Path | None = field(default=None, metadata={"help": "folder the samples' video paths are relative to"})
    model: str | None = field(default=None, metadata={"help": MODEL_HELP})
    baseline: str | None = field(default=None, metadata={"help": " | ".join(BASELINES.names())})
    # a remote policy: openai:URL,model=NAME | realtime:WS_URL (eval/remote.py)
    policy: str | None = field(
        default=None,
        metadata={
            "help": "a model behind a server: openai:URL,model=NAME (vLLM, SGLang, evostreaming serve) or "
            "realtime:ws://HOST:PORT/v1/realtime (evostreaming serve); api_key=KEY or EVOSTREAMING_API_KEY"
        },
    )
    concurrency: int = field(default=1, metadata={"help": "streams run at once (with --policy or --baseline)"})
    batch_streams: int = field(
        default=1,
        metadata={"help": "streams of a local --model stepped together, one packed forward per step (same results)"},
    )
    max_batch_tokens: int = field(default=8192, metadata={"help": "new tokens per packed forward (--batch-streams)"})
    adapter: Path | None = field(default=None, metadata={"help": "a PEFT LoRA adapter folder to apply on the model"})
    judge: str = field(default="rule", metadata={"help": "rule | embedding | openai:URL,model=NAME"})
    fps: float | None = field(default=None, metadata={"help": "override the samples' frame rate (default 0.5)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N samples"})
    silence_threshold: float | None = field(
        default=None,
        metadata={"help": "silent iff P(marker) >= this (higher = more talkative); default: greedy decision"},
    )
    memory_window: float = field(default=0.0, metadata={"help": "bounded memory, seconds of frames (0 = unbounded)"})
    max_new_tokens: int = field(default=48, metadata={"help": "longest response"})
    max_pixels: int = field(default=448 * 448, metadata={"help": "frame pixel budget (0 = keep each frame's size)"})
    visual_tokens_per_frame: int = field(
        default=128,
        metadata={"help": "visual tokens per frame (the paper trains at ~128); fixed-count families ignore it"},
    )
    max_failures: int | None = field(
        default=None,
        metadata={"help": "stop (exit 1) when more samples than this fail in a run; default 5% of them, at least 3"},
    )
    device: str = field(default="auto", metadata={"help": PLACEMENT_HELP["device"]})
    dtype: str = field(default="auto", metadata={"help": PLACEMENT_HELP["dtype"]})
    attn: str = field(default="auto", metadata={"help": PLACEMENT_HELP["attn"]})
    device_map: str | None = field(default=None, metadata={"help": PLACEMENT_HELP["device_map"]})

    def __post_init__(self) -> None:
        from evostreaming.eval.benchmarks import BENCHMARKS
        from evostreaming.eval.policies import BASELINES

        if sum(x is not None for x in (self.model, self.baseline, self.policy)) != 1:
            raise ValueError("give exactly one of --model, --baseline or --policy")
        if self.policy is not None:
            from evostreaming.eval.remote import check_remote_spec

            check_remote_spec(self.policy)
        if self.concurrency < 1:
            raise ValueError(f"--concurrency is a number of streams >= 1; got {self.concurrency}")
        if self.concurrency > 1 and self.model is not None:
            raise ValueError(
                "--concurrency runs streams at once against a server (--policy) or a baseline; a local --model "
                "steps one stream per process: serve it ('evostreaming serve') and use --policy realtime:..., or "
                "run several processes with 'accelerate launch' (docs/scale.md)"
            )
        if self.batch_streams < 1 or self.max_batch_tokens < 1:
            raise ValueError(
                "--batch-streams and --max-batch-tokens must be >= 1; "
                f"got {self.batch_streams}, {self.max_batch_tokens}"
            )
        if self.batch_streams > 1 and self.model is None:
            raise ValueError(
                "--batch-streams packs the streams of a local --model into one forward; for a --policy or a "
                "--baseline, run streams at once with --concurrency"
            )
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"--benchmark {self.benchmark!r}: use one of {', '.join(BENCHMARKS.names())}")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ValueError(f"--baseline {self.baseline!r}: use one of {', '.join(BASELINES.names())}")
        if not Path(self.data).exists():
            raise ValueError(f"--data {self.data}: no such file or folder")
        if self.videos is not None and not Path(self.videos).is_dir():
            raise ValueError(f"--videos {self.videos}: no such folder")
        if self.adapter is not None and not Path(self.adapter).is_dir():
            raise ValueError(f"--adapter {self.adapter}: no such folder")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"--fps must be a positive number of frames per second; got {self.fps}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit is a number of samples >= 1; got {self.limit} (omit it to run all)")
        if not (math.isfinite(self.memory_window) and self.memory_window >= 0):
            raise ValueError(f"--memory-window is seconds >= 0 (0 = unbounded); got {self.memory_window}")
        if self.silence_threshold is not None and not 0.0 <= self.silence_threshold <= 1.0:
            raise ValueError(f"--silence-threshold is a probability in [0, 1]; got {self.silence_threshold}")
        if self.max_new_tokens < 1 or self.visual_tokens_per_frame < 1:
            raise ValueError("--max-new-tokens and --visual-tokens-per-frame must be >= 1")
        from evostreaming.video.sources import check_max_pixels

        check_max_pixels(self.max_pixels)
        if self.max_failures is not None and self.max_failures < 0:
            raise ValueError(f"--max-failures must be >= 0; got {self.max_failures}")
        self.placement()  # device, dtype and attention are checked there

    def placement(self):
        from evostreaming.models.placement import Placement

        return Placement(device=self.device, dtype=self.dtype, attn=self.attn, device_map=self.device_map)

    def identity(self) -> dict:
        """Every setting that changes the trajectories (the judge only changes the report)."""
        from evostreaming.models.loading import weights_fingerprint
        from evostreaming.models.specs import parse_spec

        # none changes a trajectory (batching is exact: tests/test_engine.py). --videos only says where the
        # videos are: each trajectory records its video's fingerprint, checked on resume
        # (protocol.check_videos_unchanged), so a corrected --videos retries failed samples
        skip = (
            "judge",
            "max_failures",
            "device",
            "device_map",
            "concurrency",
            "batch_streams",
            "max_batch_tokens",
            "videos",
        )
        ident = {k: v for k, v in asdict(self).items() if k not in skip}
        ident["policy"] = redact(self.policy)
        ident["dtype"], ident["attn"] = self.placement().describe()["dtype"], self.placement().describe()["attn"]
        samples_file = Path(self.data) / "samples.jsonl"  # a folder's samples, not its videos
        ident["data_sha256"] = file_digest(samples_file if samples_file.is_file() else self.data)
        if self.model:
            ident["model_weights"] = weights_fingerprint(parse_spec(self.model).folder())
        if self.adapter:
            ident["adapter_weights"] = file_digest(Path(self.adapter) / "adapter_model.safetensors")
        return ident
