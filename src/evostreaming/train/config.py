"""LoRA SFT settings (no heavy imports: the CLI builds its LoRA flags from these fields)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SILENT_KEEP_HELP = "fraction of silent steps that carry loss (1 = every assistant turn, the paper's recipe)"
MARKER_ROWS_HELP = "also train the embedding/output rows of a one-token silence marker (PEFT trainable tokens)"


@dataclass
class LoraTrainConfig:
    """LoRA SFT settings; the fields with a ``help`` are the CLI's LoRA flags (``evolve run``, ``train lora``)."""

    rank: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    dropout: float = 0.05
    lr: float = field(default=1e-4, metadata={"help": "learning rate"})
    batch_size: int = field(default=8, metadata={"help": "conversations per optimizer step"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training file (fractions allowed)"})
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 50
    max_pixels: int = 448 * 448
    visual_tokens_per_frame: int = field(
        default=128, metadata={"help": "visual tokens per frame, as the session encodes them (the paper: ~128)"}
    )
    # fraction of silent steps that carry loss (the rest stay in context). 1.0 = the paper's
    # recipe (every assistant turn); lower values rebalance streams where silence dominates
    silent_keep: float = field(default=1.0, metadata={"help": SILENT_KEEP_HELP})
    # train the embedding and output rows of a single-token silence marker (PEFT trainable tokens),
    # as for any newly added token: LoRA on the layers alone cannot make a never-emitted token likely
    train_marker_rows: bool = field(default=True, metadata={"help": MARKER_ROWS_HELP, "flag": "--marker-rows"})

    def __post_init__(self) -> None:
        """Settings that cannot work raise ValueError, with the fix, before any work."""
        if not 0.0 < self.silent_keep <= 1.0:
            raise ValueError(f"--silent-keep must be in (0, 1], got {self.silent_keep}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ValueError(f"--epochs must be > 0, got {self.epochs}")
        if self.visual_tokens_per_frame < 1:
            raise ValueError(f"--visual-tokens-per-frame must be >= 1, got {self.visual_tokens_per_frame}")
        if self.rank < 1 or self.alpha < 1:
            raise ValueError(f"--rank and --alpha must be >= 1, got {self.rank} and {self.alpha}")
