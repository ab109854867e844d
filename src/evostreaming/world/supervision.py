"""Offline supervision from ShapesWorld clips: what the pocket model is trained on.

Never streaming conversations and never the silence marker: only questions about a clip (or a
prefix of it, i.e. a shorter clip) shown whole, like the data real offline VideoLLMs see.

Kinds of examples (all chat turns: user = frames + text, assistant = canonical answer):
* ``qa``: a canonical question about the clip's end -> its answer;
* ``caption``: "describe the video." -> the changes, in order;
* ``question``: "write a question of type X about this video." -> a canonical question of type X;
* ``relevance``: two consecutive frames + "is this segment relevant to the question: Q ..." -> yes/no;
* ``task_type``: "which task type fits this video? ..." -> one of the five types.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from evostreaming.world.language import answer_at, caption, questions_for, relevant_at
from evostreaming.world.scene import STEP_S, TASK_TYPES, Scene, render_frames

KINDS_OF_EXAMPLES = ("qa", "caption", "question", "relevance", "task_type")
WEIGHTS = {"qa": 0.40, "caption": 0.10, "question": 0.15, "relevance": 0.25, "task_type": 0.10}

TASK_TYPE_PROMPT = "which task type fits this video? " + ", ".join(TASK_TYPES) + "?"
QUESTION_PROMPT = "write a question of type {task_type} about this video."
RELEVANCE_PROMPT = "is this segment relevant to the question: {question} answer yes or no."
CAPTION_PROMPT = "describe the video."


@dataclass
class Example:
    kind: str
    frames: list[np.ndarray]
    prompt: str
    answer: str
    task_type: str
    meta: dict


def _frames(scene: Scene) -> list[np.ndarray]:
    return [f for _, f in render_frames(scene)]


def make_example(scene: Scene, kind: str, rng: random.Random, frames: list[np.ndarray] | None = None) -> Example | None:
    frames = frames if frames is not None else _frames(scene)
    n = len(frames)
    if kind == "qa":
        k = rng.randrange(n)
        t = k * STEP_S
        cands = [(q, a) for q in questions_for(scene) if (a := answer_at(scene, q, t)) is not None]
        if not cands:
            return None
        # balance templates, not (question, kind) pairs
        keys = sorted({q.template.key for q, _ in cands})
        key = rng.choice(keys)
        q, a = rng.choice([c for c in cands if c[0].template.key == key])
        return Example("qa", frames[: k + 1], q.text, a, q.task_type, {"key": key, "t": t})
    if kind == "caption":
        k = rng.randrange(n)
        return Example("caption", frames[: k + 1], CAPTION_PROMPT, caption(scene, k * STEP_S), scene.task_type, {})
    if kind == "question":
        typed = [(tt, qs) for tt in TASK_TYPES if (qs := questions_for(scene, tt))]
        tt, qs = rng.choice(typed)
        q = rng.choice(qs)
        return Example("question", frames, QUESTION_PROMPT.format(task_type=tt), q.text, tt, {})
    if kind == "relevance":
        qs = questions_for(scene)
        if not qs or n < 2:
            return None
        want = rng.random() < 0.5
        for _ in range(20):
            q = rng.choice(qs)
            k = rng.randrange(1, n)
            if relevant_at(scene, q, k * STEP_S) == want:
                break
        rel = relevant_at(scene, q, k * STEP_S)
        return Example(
            "relevance",
            frames[k - 1 : k + 1],
            RELEVANCE_PROMPT.format(question=q.text),
            "yes" if rel else "no",
            q.task_type,
            {"t": k * STEP_S},
        )
    if kind == "task_type":
        return Example("task_type", frames, TASK_TYPE_PROMPT, scene.task_type, scene.task_type, {})
    raise ValueError(kind)


def sample_examples(scene: Scene, rng: random.Random, n: int) -> list[Example]:
    frames = _frames(scene)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    out = []
    while len(out) < n:
        ex = make_example(scene, rng.choices(kinds, weights)[0], rng, frames)
        if ex is not None:
            out.append(ex)
    return out


def to_messages(ex: Example, system: str | None = "You are a helpful assistant.") -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    content = [{"type": "image"} for _ in ex.frames] + [{"type": "text", "text": ex.prompt}]
    msgs.append({"role": "user", "content": content})
    msgs.append({"role": "assistant", "content": ex.answer})
    return msgs
