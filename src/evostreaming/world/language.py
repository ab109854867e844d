"""The world's canonical language: question templates per task type, their answers derived from
the event log, a parser that recognizes them, and relevance of a step to a question.

Every answer is in canonical wording and carries a judge kind that the rule judge scores exactly
(after normalization), so ShapesWorld scores never depend on an LLM or on embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evostreaming.world.scene import KINDS, STEP_S, Scene

K = "|".join(KINDS)


@dataclass(frozen=True)
class Template:
    key: str
    task_type: str
    text: str  # with {kind} where needed
    judge: str  # rule-judge kind of the answer
    streaming: bool  # asked at the start, answered each time it becomes relevant

    def render(self, kind: str | None = None) -> str:
        return self.text.format(kind=kind) if "{kind}" in self.text else self.text

    def pattern(self) -> re.Pattern:
        body = re.escape(self.text).replace(re.escape("{kind}"), f"(?P<kind>{K})")
        return re.compile(rf"^\s*{body}\s*$", re.IGNORECASE)


TEMPLATES = [
    Template("color_now", "immediate visual", "what color is the {kind} now?", "exact", False),
    Template("where_now", "immediate visual", "where is the {kind} now?", "exact", False),
    Template("count_now", "immediate visual", "how many shapes are there now?", "number", False),
    Template("color_before", "memory-dependent", "what color was the {kind} before it changed?", "exact", False),
    Template("where_before", "memory-dependent", "where was the {kind} before it moved?", "exact", False),
    Template(
        "count_moves", "temporal aggregation", "tell me each time the {kind} moves, with the count.", "number", True
    ),
    Template("when_appears", "anticipatory monitoring", "tell me when a {kind} appears.", "text", True),
    Template("each_change", "dynamic event description", "tell me each change as it happens.", "text", True),
]
BY_KEY = {t.key: t for t in TEMPLATES}


@dataclass(frozen=True)
class Question:
    template: Template
    kind: str | None

    @property
    def text(self) -> str:
        return self.template.render(self.kind)

    @property
    def task_type(self) -> str:
        return self.template.task_type


def parse_question(text: str) -> Question | None:
    """Recognize a canonical question (None if it is not one)."""
    for t in TEMPLATES:
        m = t.pattern().match(text)
        if m:
            return Question(t, m.groupdict().get("kind"))
    return None


def answer_at(scene: Scene, q: Question, t: float) -> str | None:
    """The canonical answer to ``q`` given the video up to time t (None: not answerable yet)."""
    key = q.template.key
    state = scene.state_at(t)
    past = [e for e in scene.events if e.time <= t + 1e-9]
    if key == "count_now":
        return str(len(state))
    if key in ("color_now", "where_now"):
        s = state.get(q.kind)
        if s is None:
            return None
        return s.color if key == "color_now" else s.quadrant
    if key == "color_before":
        evs = [e for e in past if e.kind == q.kind and e.action == "recolor"]
        return evs[-1].old_color if evs else None
    if key == "where_before":
        evs = [e for e in past if e.kind == q.kind and e.action == "move"]
        return evs[-1].old_quadrant if evs else None
    if key == "count_moves":
        if q.kind not in state and not any(e.kind == q.kind for e in past):
            return None
        return str(sum(1 for e in past if e.kind == q.kind and e.action == "move"))
    if key == "when_appears":
        evs = [e for e in past if e.kind == q.kind and e.action == "appear"]
        return evs[-1].phrase() if evs else None
    if key == "each_change":
        return past[-1].phrase() if past else None
    raise ValueError(key)


def relevant_at(scene: Scene, q: Question, t: float) -> bool:
    """Is the step ending at t (the interval (t - 2 s, t]) relevant to ``q``?

    Streaming questions are relevant where their answer changes (a move, the appearance, any
    change); questions about the current state where the shape is visible; questions about a
    past state at the change they ask about.
    """
    key = q.template.key
    new = scene.events_between(t - STEP_S, t)
    if key == "count_now":
        return True
    if key in ("color_now", "where_now"):
        return q.kind in scene.state_at(t)
    if key == "color_before":
        return any(e.kind == q.kind and e.action == "recolor" for e in new)
    if key in ("where_before", "count_moves"):
        return any(e.kind == q.kind and e.action == "move" for e in new)
    if key == "when_appears":
        return any(e.kind == q.kind and e.action == "appear" for e in new)
    if key == "each_change":
        return bool(new)
    raise ValueError(key)


def questions_for(scene: Scene, task_type: str | None = None) -> list[Question]:
    """Every canonical question of a type that makes sense for this scene (has an answer somewhere)."""
    kinds = sorted({s.kind for s in scene.initial} | {e.kind for e in scene.events})
    out = []
    for t in TEMPLATES:
        if task_type and t.task_type != task_type:
            continue
        for kind in kinds if "{kind}" in t.text else [None]:
            q = Question(t, kind)
            if any(relevant_at(scene, q, s) and answer_at(scene, q, s) is not None for s in scene.step_times()):
                out.append(q)
    return out


def caption(scene: Scene, t_end: float | None = None) -> str:
    t_end = scene.duration if t_end is None else t_end
    phrases = [e.phrase() for e in scene.events if e.time <= t_end + 1e-9]
    return ", ".join(phrases) if phrases else "nothing changes"


def is_valid_question(text: str, task_type: str, scene: Scene | None = None) -> bool:
    """A generated question is valid if it parses as a canonical question of the requested type
    (and, given the scene, makes sense for it)."""
    q = parse_question(text)
    if q is None or q.task_type != task_type:
        return False
    return scene is None or any(x.text == q.text for x in questions_for(scene, task_type))
