"""Tokenizers with a released checkpoint's vocabulary size and special-token ids, built offline.

The twin's tokenizer cannot be the real one (no download), but everything that depends on token
ids must behave as with the real one: the embedding table's size, the special tokens the processor
and the session look up (``<|image_pad|>`` is 151655 in every Qwen-VL), end-of-turn ids. So a small
byte-level BPE is trained locally, its tokens take the free ids from 0, reserved filler tokens fill
the rest, and each special token sits at its released id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from evostreaming.models.tokenizer import train_bpe_tokenizer


@dataclass(frozen=True)
class TokenLayout:
    size: int  # len(tokenizer) of the released tokenizer
    specials: dict[str, int]  # special token -> released id
    eos: str
    pad: str
    bos: str | None = None
    named: dict[str, str] = field(default_factory=dict)  # tokenizer attributes processors read


def _consecutive(first: int, tokens: list[str]) -> dict[str, int]:
    return {t: first + i for i, t in enumerate(tokens)}


QWEN2_SPECIALS = _consecutive(
    151643,
    [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "<|box_start|>",
        "<|box_end|>",
        "<|quad_start|>",
        "<|quad_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
    ],
)
QWEN3_SPECIALS = {
    **QWEN2_SPECIALS,
    **_consecutive(151665, ["<tool_response>", "</tool_response>", "<think>", "</think>"]),
}
INTERNVL_SPECIALS = {
    **QWEN3_SPECIALS,
    **_consecutive(
        151669,
        ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>", "<video>"],
    ),
}
SMOLVLM_SPECIALS = {
    "<|endoftext|>": 0,
    "<|im_start|>": 1,
    "<|im_end|>": 2,
    "<global-img>": 49152,
    **_consecutive(49153, [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]),
    "<fake_token_around_image>": 49189,
    "<image>": 49190,
    "<video>": 49191,
    "<end_of_utterance>": 49279,
}

LAYOUTS: dict[str, TokenLayout] = {
    "qwen2": TokenLayout(151665, QWEN2_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>"),
    "qwen3": TokenLayout(151669, QWEN3_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>"),
    "internvl": TokenLayout(
        151679,
        INTERNVL_SPECIALS,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    ),
    "onevision": TokenLayout(
        151648,
        _consecutive(151643, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]),
        eos="<|im_end|>",
        pad="<|endoftext|>",
    ),
    "smolvlm": TokenLayout(49280, SMOLVLM_SPECIALS, eos="<end_of_utterance>", pad="<|im_end|>", bos="<|im_start|>"),
}


def layout_tokenizer(layout: TokenLayout, corpus=None) -> PreTrainedTokenizerFast:
    """A byte-level BPE of ``layout.size`` tokens with every special token at its released id."""
    learned = train_bpe_tokenizer([], corpus=corpus)
    model = json.loads(learned.backend_tokenizer.to_str())["model"]
    taken = set(layout.specials.values())
    free = (i for i in range(layout.size) if i not in taken)
    vocab = {tok: next(free) for tok, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])}
    vocab.update(layout.specials)
    for i in free:  # unreachable fillers, so the ids the real tokenizer has all exist
        vocab[f"<|reserved_{i}|>"] = i
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in layout.specials])
    roles = {"eos_token": layout.eos, "pad_token": layout.pad, "bos_token": layout.bos}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, extra_special_tokens=dict(layout.named), **{k: v for k, v in roles.items() if v}
    )
    named = {v for v in roles.values() if v} | set(layout.named.values())
    fast.add_special_tokens({"additional_special_tokens": [t for t in layout.specials if t not in named]})
    wrong = {t: fast.convert_tokens_to_ids(t) for t, i in layout.specials.items() if fast.convert_tokens_to_ids(t) != i}
    if wrong or len(fast) != layout.size:  # a tokenizers change would silently shift ids: refuse instead
        raise RuntimeError(f"twin tokenizer layout broken: size {len(fast)} != {layout.size} or ids moved: {wrong}")
    return fast
