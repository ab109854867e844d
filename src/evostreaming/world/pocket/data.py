"""Turn ShapesWorld examples into model inputs (labels on the assistant answer only), and batch them."""

from __future__ import annotations

import random

import torch
from PIL import Image

from evostreaming.world.generator import generate_scene
from evostreaming.world.supervision import Example, sample_examples, to_messages

IGNORE = -100


def assistant_mask(ids: list[int], header: list[int], end_id: int) -> list[bool]:
    """True on the tokens of every assistant answer and its end token: what the model learns to say.
    Everything else (system, user turns, frames, the assistant header, the newline after the end
    token) is context."""
    mask = [False] * len(ids)
    i = 0
    while i < len(ids):
        if ids[i : i + len(header)] == header:
            j = i + len(header)
            while j < len(ids) and ids[j] != end_id:
                mask[j] = True
                j += 1
            if j < len(ids):
                mask[j] = True
            i = j + 1
        else:
            i += 1
    return mask


def encode_example(processor, ex: Example) -> dict[str, torch.Tensor]:
    tok = processor.tokenizer
    full = processor.apply_chat_template(to_messages(ex), tokenize=False)
    images = [Image.fromarray(f) for f in ex.frames]
    enc = processor(text=[full], images=images, return_tensors="pt")
    ids = enc["input_ids"][0]
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    mask = torch.tensor(assistant_mask(ids.tolist(), header, tok.convert_tokens_to_ids("<|im_end|>")))
    labels = torch.where(mask, ids, torch.full_like(ids, IGNORE))
    return {
        "input_ids": ids,
        "labels": labels,
        "mm_token_type_ids": enc["mm_token_type_ids"][0],
        "pixel_values": enc["pixel_values"],
        "image_grid_thw": enc["image_grid_thw"],
    }


def collate(items: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(x["input_ids"].shape[0] for x in items)

    def pad(key, value):
        return torch.stack([torch.nn.functional.pad(x[key], (0, n - x[key].shape[0]), value=value) for x in items])

    return {
        "input_ids": pad("input_ids", pad_id),
        "labels": pad("labels", IGNORE),
        "mm_token_type_ids": pad("mm_token_type_ids", 0),
        "attention_mask": torch.stack(
            [torch.nn.functional.pad(torch.ones_like(x["input_ids"]), (0, n - x["input_ids"].shape[0])) for x in items]
        ),
        "pixel_values": torch.cat([x["pixel_values"] for x in items]),
        "image_grid_thw": torch.cat([x["image_grid_thw"] for x in items]),
    }


# drawn uniformly: half the conversations open with the list by kind (what teaches finding a named
# shape: 54% -> 90% right on "where/what color is the X now?" in a 1,000-step probe), a quarter
# with the inventory, a quarter with the questions alone
PERCEPTION_OPENERS = ("kind_list", "kind_list", "inventory", "direct")


def perception_examples(scene, rng: random.Random, n: int, openers: tuple[str, ...] = ("inventory",)) -> list[Example]:
    """Single-frame questions about what is on screen: the grounding curriculum's first phase.
    Each conversation asks up to three per-shape questions (count, color and place of a named
    shape) about one frame, after an opener drawn from ``openers``: the inventory in quadrant order
    (the densest signal, but the questions can then be answered from the list just written),
    the list by kind (naming a shape and then its place makes the model search the frame for that
    shape), or nothing ("direct": the questions alone)."""
    from evostreaming.world.language import BY_KEY, Question, answer_at
    from evostreaming.world.scene import STEP_S, render_frames
    from evostreaming.world.supervision import LISTINGS

    frames = render_frames(scene)
    out = []
    while len(out) < n:
        k = rng.randrange(len(frames))
        t = k * STEP_S
        qs = [Question(BY_KEY["count_now"], None)] + [
            Question(BY_KEY[key], kind) for kind in sorted(scene.state_at(t)) for key in ("color_now", "where_now")
        ]
        turns = [(q.text, answer_at(scene, q, t)) for q in rng.sample(qs, min(3, len(qs)))]
        # one opener draws nothing from rng, so ("inventory",) replays v3's data exactly
        opener = openers[0] if len(openers) == 1 else rng.choice(openers)
        if opener in LISTINGS:
            prompt, answer = LISTINGS[opener]
            ex = Example(opener, [frames[k][1]], prompt, answer(scene, t), scene.task_type, {}, turns)
        else:  # direct: the questions alone
            ex = Example("qa", [frames[k][1]], *turns[0], scene.task_type, {}, turns[1:])
        out.append(ex)
    return out


def batch_examples(
    seed: int,
    step: int,
    batch_size: int,
    n_scenes: int,
    perception_steps: int = 0,
    frames_per_turn: float = 0.0,
    openers: tuple[str, ...] = PERCEPTION_OPENERS,
    mixture: dict[str, float] | None = None,
) -> list[Example]:
    """The examples of training step ``step``: a pure function of (seed, step), so resuming after a
    crash continues with exactly the data the uninterrupted run would have seen. During the first
    ``perception_steps`` steps, only single-frame perception questions (a grounding curriculum:
    otherwise a model trained from scratch can settle on the answers' text priors and ignore the
    frames). A ``frames_per_turn`` fraction of the multi-frame examples show their frames one user
    message each (``prompt_messages``), drawn from a separate generator so that 0 reproduces the
    released model's data exactly. ``openers``: how perception conversations open
    (``perception_examples``); ``mixture``: the kinds' weights after them (``supervision.WEIGHTS``)."""
    rng = random.Random(seed * 1_000_003 + step)
    out: list[Example] = []
    while len(out) < batch_size:
        scene = generate_scene(rng.randrange(n_scenes))
        n = min(2, batch_size - len(out))
        if step < perception_steps:
            out.extend(perception_examples(scene, rng, n, openers))
        else:
            out.extend(sample_examples(scene, rng, n, mixture=mixture))
    if frames_per_turn and step >= perception_steps:
        layout = random.Random(seed * 1_000_003 + step + 7_777_777)
        for ex in out:
            ex.meta["frames_per_turn"] = len(ex.frames) > 1 and layout.random() < frames_per_turn
    return out
