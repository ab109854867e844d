"""Turn ShapesWorld examples into model inputs (labels on the assistant answer only), and batch them."""

from __future__ import annotations

import random

import torch
from PIL import Image

from evostreaming.world.generator import generate_scene
from evostreaming.world.supervision import Example, sample_examples, to_messages

IGNORE = -100


def encode_example(processor, ex: Example) -> dict[str, torch.Tensor]:
    msgs = to_messages(ex)
    prompt = processor.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = processor.apply_chat_template(msgs, tokenize=False)
    images = [Image.fromarray(f) for f in ex.frames]
    enc = processor(text=[full], images=images, return_tensors="pt")
    n_prompt = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1]
    ids = enc["input_ids"][0]
    labels = ids.clone()
    labels[:n_prompt] = IGNORE
    # the trailing newline after <|im_end|> is template formatting, not something to predict
    labels[-1] = IGNORE
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


PERCEPTION_KEYS = ("color_now", "where_now", "count_now")


def perception_examples(scene, rng: random.Random, n: int) -> list[Example]:
    """Single-frame questions about what is on screen: the grounding curriculum's first phase."""
    from evostreaming.world.language import BY_KEY, Question, answer_at
    from evostreaming.world.scene import STEP_S, render_frames

    frames = render_frames(scene)
    out = []
    while len(out) < n:
        k = rng.randrange(len(frames))
        key = rng.choice(PERCEPTION_KEYS)
        kinds = sorted(scene.state_at(k * STEP_S)) or [None]
        q = Question(BY_KEY[key], None if key == "count_now" else rng.choice(kinds))
        a = answer_at(scene, q, k * STEP_S)
        if a is not None:
            out.append(Example("qa", [frames[k][1]], q.text, a, q.task_type, {"key": key}))
    return out


def batch_examples(seed: int, step: int, batch_size: int, n_scenes: int, perception_steps: int = 0) -> list[Example]:
    """The examples of training step ``step``: a pure function of (seed, step), so resuming after a
    crash continues with exactly the data the uninterrupted run would have seen. During the first
    ``perception_steps`` steps, only single-frame perception questions (a grounding curriculum:
    otherwise a model trained from scratch can settle on the answers' text priors and ignore the
    frames)."""
    rng = random.Random(seed * 1_000_003 + step)
    out: list[Example] = []
    while len(out) < batch_size:
        scene = generate_scene(rng.randrange(n_scenes))
        n = min(2, batch_size - len(out))
        out.extend(perception_examples(scene, rng, n) if step < perception_steps else sample_examples(scene, rng, n))
    return out
