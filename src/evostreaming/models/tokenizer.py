"""Train small byte-level BPE tokenizers offline, with a family's special tokens.

Real checkpoints ship their own tokenizer; this is for tiny random-weight models and the pocket
model, which must exercise the same code paths (added special tokens, chat template) without
downloading anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# A small built-in corpus: enough to learn common English merges for tiny test models.
DEFAULT_CORPUS = [
    "What is happening in the video right now? Tell me when the person starts the next step.",
    "The red circle moves to the left. A blue square appears at the top of the frame.",
    "How many times has the activity been completed so far? It has been completed 3 times.",
    "Answer with the option's letter from the given choices directly. A. B. C. D. E.",
    "You are a helpful assistant watching a live video stream. Reply only when needed.",
    "yes no maybe silent respond now later before after first second third fourth",
    "zero one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9",
    "The person picks up the cup, pours water, and puts it down on the table again.",
]


def train_bpe_tokenizer(
    special_tokens: list[str],
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 600,
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    unk_token: str | None = None,
    named_tokens: dict[str, str] | None = None,
    add_prefix_space: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` and wrap it as a transformers fast tokenizer."""
    texts = list(corpus) if corpus is not None else list(DEFAULT_CORPUS)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    kwargs = {
        "bos_token": bos_token,
        "eos_token": eos_token,
        "pad_token": pad_token,
        "unk_token": unk_token,
    }
    # named_tokens become tokenizer attributes (``tok.start_image_token`` and ``..._id``) that
    # processors read, and they survive save_pretrained (as "extra_special_tokens").
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        extra_special_tokens=dict(named_tokens or {}),
        **{k: v for k, v in kwargs.items() if v},
    )
    named = {v for v in kwargs.values() if v} | set((named_tokens or {}).values())
    extra = [t for t in special_tokens if t not in named]
    if extra:
        fast.add_special_tokens({"additional_special_tokens": extra})
    return fast
