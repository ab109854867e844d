"""Offline supervision from ShapesWorld clips: what the pocket model is trained on.

Never streaming conversations and never the silence marker: only questions about a clip (or a
prefix of it, i.e. a shorter clip) shown whole, like the data real offline VideoLLMs see.

Kinds of examples (all chat turns: user = frames + text, assistant = canonical answer):
* ``qa``: a canonical question about the clip's end -> its answer;
* ``caption``: "describe the video." -> the changes, in order;
* ``question``: "write a question of type X about this video." -> a canonical question of type X;
* ``relevance``: two consecutive frames + "is this segment relevant to the question: Q ..." -> yes/no;
* ``task_type``: "which task type fits this video? ..." -> one of the five types;
* ``inventory``: "list the shapes you see now." -> every shape on screen with its color and place;
* ``kind_list``: "list the shapes by kind." -> the same, ordered by kind and naming the kind first
  ("circle at top left in red, ..."): to say where the circle is, the model must find the circle
  among the visual tokens by what it shows, which quadrant order never asks for;
* ``history``: "list the changes by kind." -> each shape's story, kind first ("circle at top left in
  red, moves to top right, turns blue; square ..."): to write it, the model must follow one named
  shape through the frames, which the questions about a past state need.

With ``turns > 1`` an example carries follow-up questions about the same frames (a multi-turn
conversation, as in real VLM instruction data): several answers are learned per encoding of the
frames. The first turn is drawn exactly as for a single-turn example, so held-out evaluation sets
(single-turn) do not depend on it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from evostreaming.world.language import answer_at, caption, questions_for, relevant_at
from evostreaming.world.scene import KINDS, QUADRANTS, STEP_S, TASK_TYPES, Scene, render_frames

# new kinds go last: held-out sets draw kinds in this order, so earlier kinds' examples stay the same
KINDS_OF_EXAMPLES = ("qa", "caption", "question", "relevance", "task_type", "inventory", "kind_list", "history")
WEIGHTS = {
    "qa": 0.35,
    "caption": 0.05,
    "question": 0.15,
    "relevance": 0.15,
    "task_type": 0.10,
    "inventory": 0.05,
    "kind_list": 0.05,
    "history": 0.10,
}
# the released v6 pocket's mixture (no history; captions and relevance 5 points more each)
WEIGHTS_V6 = {**WEIGHTS, "caption": 0.10, "relevance": 0.20, "history": 0.0}

TASK_TYPE_PROMPT = "which task type fits this video? " + ", ".join(TASK_TYPES) + "?"
QUESTION_PROMPT = "write a question of type {task_type} about this video."
RELEVANCE_PROMPT = "is this segment relevant to the question: {question} answer yes or no."
CAPTION_PROMPT = "describe the video."
INVENTORY_PROMPT = "list the shapes you see now."
KIND_LIST_PROMPT = "list the shapes by kind."
HISTORY_PROMPT = "list the changes by kind."


@dataclass
class Example:
    kind: str
    frames: list[np.ndarray]
    prompt: str
    answer: str
    task_type: str
    meta: dict
    follow_ups: list[tuple[str, str]] = field(default_factory=list)  # more (prompt, answer) turns


def inventory(scene: Scene, t: float) -> str:
    """Every shape on screen at t, in quadrant order: "red circle at top left, blue square at ..."."""
    state = scene.state_at(t)
    items = sorted(state.values(), key=lambda s: QUADRANTS.index(s.quadrant))
    return ", ".join(f"{s.color} {s.kind} at {s.quadrant}" for s in items) or "no shapes"


def kind_list(scene: Scene, t: float) -> str:
    """Every shape on screen at t, in kind order, kind first: "circle at top left in red, ..."."""
    state = scene.state_at(t)
    return ", ".join(f"{k} at {state[k].quadrant} in {state[k].color}" for k in KINDS if k in state) or "no shapes"


def history(scene: Scene, t: float) -> str:
    """Each shape seen up to t, in kind order, with what happened to it in order:
    "circle at top left in red, moves to top right, turns blue; square appears at bottom left in green"."""
    parts = []
    for k in KINDS:
        start = next((s for s in scene.initial if s.kind == k), None)
        items = [f"{k} at {start.quadrant} in {start.color}"] if start else []
        for e in scene.events:
            if e.kind != k or e.time > t + 1e-9:
                continue
            if e.action == "appear":  # the kind leads its story, even when it arrives later
                items.append(f"{'' if items else k + ' '}appears at {e.quadrant} in {e.color}")
            elif e.action == "disappear":
                items.append("disappears")
            elif e.action == "move":
                items.append(f"moves to {e.quadrant}")
            else:
                items.append(f"turns {e.color}")
        if items:
            parts.append(", ".join(items))
    return "; ".join(parts) or "no shapes"


# the listing kinds: prompt and answer at time t
LISTINGS = {
    "inventory": (INVENTORY_PROMPT, inventory),
    "kind_list": (KIND_LIST_PROMPT, kind_list),
    "history": (HISTORY_PROMPT, history),
}


def _frames(scene: Scene) -> list[np.ndarray]:
    return [f for _, f in render_frames(scene)]


def make_example(
    scene: Scene, kind: str, rng: random.Random, frames: list[np.ndarray] | None = None, turns: int = 1
) -> Example | None:
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
        ex = Example("qa", frames[: k + 1], q.text, a, q.task_type, {"key": key, "t": t})
        rest = [c for c in cands if c[0] != q]
        ex.follow_ups = [(q2.text, a2) for q2, a2 in rng.sample(rest, min(turns - 1, len(rest)))]
        return ex
    if kind == "caption":
        k = rng.randrange(n)
        return Example("caption", frames[: k + 1], CAPTION_PROMPT, caption(scene, k * STEP_S), scene.task_type, {})
    if kind == "question":
        typed = [(tt, qs) for tt in TASK_TYPES if (qs := questions_for(scene, tt))]
        tt, qs = rng.choice(typed)
        q = rng.choice(qs)
        ex = Example("question", frames, QUESTION_PROMPT.format(task_type=tt), q.text, tt, {})
        rest = [(tt2, qs2) for tt2, qs2 in typed if tt2 != tt]
        ex.follow_ups = [
            (QUESTION_PROMPT.format(task_type=tt2), rng.choice(qs2).text)
            for tt2, qs2 in rng.sample(rest, min(turns - 1, len(rest)))
        ]
        return ex
    if kind in LISTINGS:  # a listing of the clip's first k + 1 frames
        k = rng.randrange(n)
        prompt, listing = LISTINGS[kind]
        return Example(kind, frames[: k + 1], prompt, listing(scene, k * STEP_S), scene.task_type, {})
    if kind == "relevance":
        qs = questions_for(scene)
        if not qs or n < 2:
            return None
        # Balance yes/no *per question*: otherwise "yes" is mostly the always-relevant questions
        # about the current state and "no" the questions about changes, and a model can score
        # well by reading the question alone without looking at the segment.
        key = rng.choice(sorted({x.template.key for x in qs}))
        q = rng.choice([x for x in qs if x.template.key == key])
        pos = [k for k in range(1, n) if relevant_at(scene, q, k * STEP_S)]
        neg = [k for k in range(1, n) if not relevant_at(scene, q, k * STEP_S)]
        want = rng.random() < 0.5
        k = rng.choice((pos if want else neg) or pos or neg)
        rel = relevant_at(scene, q, k * STEP_S)
        ex = Example(
            "relevance",
            frames[k - 1 : k + 1],
            RELEVANCE_PROMPT.format(question=q.text),
            "yes" if rel else "no",
            q.task_type,
            {"t": k * STEP_S},
        )
        rest = [q2 for q2 in qs if q2 != q]
        ex.follow_ups = [
            (RELEVANCE_PROMPT.format(question=q2.text), "yes" if relevant_at(scene, q2, k * STEP_S) else "no")
            for q2 in rng.sample(rest, min(turns - 1, len(rest)))
        ]
        return ex
    if kind == "task_type":
        return Example("task_type", frames, TASK_TYPE_PROMPT, scene.task_type, scene.task_type, {})
    raise ValueError(kind)


# turns per training example, by kind (question writing and QA gain most from several per clip)
TRAIN_TURNS = {
    "qa": 3,
    "caption": 1,
    "question": 3,
    "relevance": 2,
    "task_type": 1,
    "inventory": 1,
    "kind_list": 1,
    "history": 1,
}


def sample_examples(
    scene: Scene,
    rng: random.Random,
    n: int,
    turns: dict[str, int] | None = None,
    mixture: dict[str, float] | None = None,
) -> list[Example]:
    """``n`` examples of kinds drawn from ``mixture`` (default ``WEIGHTS``; zero-weight kinds never drawn)."""
    frames = _frames(scene)
    turns = TRAIN_TURNS if turns is None else turns
    mixture = WEIGHTS if mixture is None else mixture
    kinds = [k for k in KINDS_OF_EXAMPLES if mixture.get(k, 0) > 0]
    weights = [mixture[k] for k in kinds]
    out = []
    while len(out) < n:
        kind = rng.choices(kinds, weights)[0]
        ex = make_example(scene, kind, rng, frames, turns=turns.get(kind, 1))
        if ex is not None:
            out.append(ex)
    return out


def prompt_messages(ex: Example, system: str | None = "You are a helpful assistant.") -> list[dict]:
    """The first user turn (frames + prompt), ready for a generation prompt. With
    ``ex.meta["frames_per_turn"]`` the frames arrive one user message each (the prompt with the
    last), as a user sending pictures one at a time would: the layout a stream has."""
    msgs = [{"role": "system", "content": system}] if system else []
    if ex.meta.get("frames_per_turn") and len(ex.frames) > 1:
        msgs += [{"role": "user", "content": [{"type": "image"}]} for _ in ex.frames[:-1]]
        msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ex.prompt}]})
        return msgs
    content = [{"type": "image"} for _ in ex.frames] + [{"type": "text", "text": ex.prompt}]
    msgs.append({"role": "user", "content": content})
    return msgs


def to_messages(ex: Example, system: str | None = "You are a helpful assistant.") -> list[dict]:
    """The whole conversation: first turn with the frames, then the text-only follow-ups."""
    msgs = prompt_messages(ex, system)
    msgs.append({"role": "assistant", "content": ex.answer})
    for prompt, answer in ex.follow_ups:
        msgs.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
        msgs.append({"role": "assistant", "content": answer})
    return msgs
