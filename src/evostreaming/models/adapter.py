"""What the streaming session needs to know about a model family.

Every family difference (turn format, image placeholder, position ids, rotary layout) lives in
one adapter subclass. The session itself is family-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image

from evostreaming.models.turns import TurnFormat, turn_format_for

TEXT_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids"})


@dataclass
class EncodedSegment:
    """One rendered piece of the conversation, tokenized (with image tokens expanded)."""

    input_ids: torch.Tensor  # (n,)
    mm_kwargs: dict[str, torch.Tensor]  # pixel_values, image_grid_thw, ... ({} for text)


class FamilyAdapter:
    """Base adapter: ChatML-like turn structure, 1D RoPE positions."""

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    # position scheme, for listings: "1d" (one position per token) or "mrope" (t/h/w grids for images)
    positions_scheme: ClassVar[str] = "1d"
    # Keys of the processor's output that the model's forward consumes for an image; None: every
    # key but the text ones (``TEXT_KEYS``), which is right for a processor that returns only those.
    image_keys: ClassVar[tuple[str, ...] | None] = ("pixel_values",)
    # memory of a hybrid tower (linear-attention layers keep a fixed-size state; stream/hybrid.py)
    hybrid_memory: ClassVar[bool] = False

    # The checkpoint's own turn format, cut from its chat template at load time (``use_template``);
    # None: the family's hand-written pieces below (the fallback for a template that cannot be cut).
    turns: TurnFormat | None = None

    def use_template(self, processor) -> FamilyAdapter:
        """Take the turn pieces from ``processor``'s chat template when it can be cut and verified."""
        self.turns = turn_format_for(processor, self.family)
        return self

    # -- turn format -------------------------------------------------------------------------
    def system(self, prompt: str) -> str:
        if self.turns:
            return self.turns.system(prompt)
        return f"<|im_start|>system\n{prompt}<|im_end|>\n"

    def preamble(self) -> str:
        """What opens a conversation without a system prompt (a template's default system turn, a BOS)."""
        return self.turns.preamble if self.turns else ""

    def user_open(self) -> str:
        return self.turns.user_open if self.turns else "<|im_start|>user\n"

    def frame(self) -> str:
        if self.turns:
            return self.turns.frame
        raise NotImplementedError

    def user_text(self, text: str) -> str:
        return (self.turns.text_prefix if self.turns else "") + text

    def assistant_open(self) -> str:
        """Closes the user turn and opens the assistant turn (the generation prompt)."""
        return self.turns.assistant_open if self.turns else "<|im_end|>\n<|im_start|>assistant\n"

    def reply_text(self, text: str) -> str:
        """How an assistant reply is written after ``assistant_open`` (some formats add a space)."""
        return (self.turns.reply_prefix if self.turns else "") + text

    def assistant_close(self) -> str:
        return self.turns.assistant_close if self.turns else "<|im_end|>\n"

    def end_of_turn_ids(self, tokenizer) -> set[int]:
        ids = {tokenizer.convert_tokens_to_ids("<|im_end|>")}
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        return ids

    # -- encoding ----------------------------------------------------------------------------
    def frame_budget(self, processor, tokens: int) -> dict[str, Any]:
        """Processor kwargs that give a frame at most ``tokens`` visual tokens. The base family has a
        fixed number of tokens per image (a tile or a pixel-shuffled grid), so it changes nothing."""
        return {}

    def encode(
        self, processor, text: str, image: Image.Image | None = None, visual_tokens: int | None = None
    ) -> EncodedSegment:
        """Tokenize ``text`` (with ``image`` expanded into its visual tokens). ``visual_tokens`` is the
        caller's frame budget (``--visual-tokens-per-frame``; None: the processor's own): it is an
        argument, never state, because one adapter serves every session of a server."""
        if image is None:
            ids = processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            return EncodedSegment(ids, {})
        kwargs = self.processor_kwargs()
        if visual_tokens:
            kwargs.update(self.frame_budget(processor, visual_tokens))
        out = processor(text=[text], images=[image], return_tensors="pt", **kwargs)
        keys = self.image_keys if self.image_keys is not None else [k for k in out if k not in TEXT_KEYS]
        mm = {k: out[k] for k in keys if k in out}
        return EncodedSegment(out["input_ids"][0], mm)

    def processor_kwargs(self) -> dict[str, Any]:
        return {}

    def merge_mm(self, parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Concatenate per-image processor outputs into one forward's keyword arguments."""
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {k: torch.cat([p[k] for p in parts], dim=0) for k in parts[0]}

    # -- positions ---------------------------------------------------------------------------
    def positions(self, model, segment: EncodedSegment, start: int) -> tuple[torch.Tensor, int]:
        """Position ids of a segment placed at ``start``, and the position after it.

        Returns a tensor of shape (P, n): P=1 for 1D RoPE, 3 for M-RoPE.
        """
        n = segment.input_ids.shape[0]
        return torch.arange(start, start + n).unsqueeze(0), start + n

    def forward_position_ids(self, positions: torch.Tensor) -> torch.Tensor:
        """Shape the concatenated (P, n) positions as the model's forward expects them."""
        return positions  # (1, n) == (batch, seq)

    def offline_inputs(self, model, input_ids: torch.Tensor, mm: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Keyword arguments for one offline forward over a whole conversation (reference path)."""
        return {"input_ids": input_ids.unsqueeze(0), **mm}

    # Linear layers of the language model, for LoRA (the vision tower stays frozen and untouched).
    lora_target_regex: ClassVar[str] = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    # 3D parameters LoRA also adapts (a mixture of experts' fused projections), by name
    lora_target_parameters: ClassVar[tuple[str, ...]] = ()

    # -- rotary ------------------------------------------------------------------------------
    def text_model(self, model):
        return model.model.language_model

    def inv_freq(self, model) -> torch.Tensor:
        rotary = self.text_model(model).rotary_emb
        if float(getattr(rotary, "attention_scaling", 1.0)) != 1.0:
            raise ValueError(
                f"{self.family}: RoPE with attention scaling cannot be re-rotated exactly; "
                "use unbounded memory (--memory-window 0) for this model"
            )
        return rotary.inv_freq.detach().float()

    def max_positions(self, model) -> int:
        return int(getattr(model.config.get_text_config(), "max_position_embeddings", 32768))


class StandardAdapter(FamilyAdapter):
    """A family that needs nothing special: the turn format cut from the checkpoint's own chat template,
    1D RoPE, the image placeholder expanded by the processor, every non-text processor output passed
    to the forward. ``register_standard_family`` makes one from a name and model types."""

    image_keys = None

    def frame(self) -> str:
        if not self.turns:
            raise ValueError(
                f"{self.family}: the checkpoint's chat template could not be cut into streaming turns, and this "
                "family has no hand-written turn format; see the TemplateWarning above and docs/streaming.md"
            )
        return self.turns.frame

    def end_of_turn_ids(self, tokenizer) -> set[int]:
        """The special tokens that close an assistant turn in the template, and the EOS."""
        ids = set()
        if self.turns:
            close = tokenizer(self.turns.assistant_close, add_special_tokens=False)["input_ids"]
            ids |= {i for i in close if i in set(tokenizer.all_special_ids)}
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        return ids
