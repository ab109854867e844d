"""ShapesWorld scenes: a seeded event script, exact states, and frame rendering.

A scene is a few colored shapes (circle, square, triangle; at most one of each kind) in the four
quadrants of a small frame. Events happen on a 2-second grid (one per step at 0.5 fps), so
every event has an exact time and every sampled frame shows an exact state:

* ``appear``: a shape appears in a free quadrant;   phrase "{color} {kind} appears"
* ``disappear``: a shape leaves;                    phrase "{kind} disappears"
* ``move``: a shape jumps to a free quadrant;       phrase "{kind} moves to {quadrant}"
* ``recolor``: a shape changes color;               phrase "{kind} turns {color}"

Frames render with numpy (and Pillow for outlines) in well under a millisecond each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 85, 225),
    "yellow": (235, 205, 35),
}
KINDS = ("circle", "square", "triangle")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
STEP_S = 2.0  # events happen on this grid (one step at 0.5 fps)
FRAME = 56  # pixels; one quadrant = 28x28 = one merged visual token of the pocket model

TASK_TYPES = (
    "immediate visual",
    "memory-dependent",
    "temporal aggregation",
    "anticipatory monitoring",
    "dynamic event description",
)


@dataclass
class ShapeState:
    kind: str
    color: str
    quadrant: str


@dataclass
class Event:
    time: float
    action: str  # appear | disappear | move | recolor
    kind: str
    color: str | None = None  # appear: its color; recolor: the new color
    quadrant: str | None = None  # appear: where; move: destination
    old_color: str | None = None
    old_quadrant: str | None = None

    def phrase(self) -> str:
        if self.action == "appear":
            return f"{self.color} {self.kind} appears"
        if self.action == "disappear":
            return f"{self.kind} disappears"
        if self.action == "move":
            return f"{self.kind} moves to {self.quadrant}"
        return f"{self.kind} turns {self.color}"


@dataclass
class Scene:
    seed: int
    task_type: str
    n_steps: int
    background: str  # plain | textured
    bg_level: int
    initial: list[ShapeState]
    events: list[Event] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.n_steps * STEP_S

    def state_at(self, t: float) -> dict[str, ShapeState]:
        """Shapes on screen at time t (events at exactly t are included)."""
        shapes = {s.kind: ShapeState(s.kind, s.color, s.quadrant) for s in self.initial}
        for ev in self.events:
            if ev.time > t + 1e-9:
                break
            if ev.action == "appear":
                shapes[ev.kind] = ShapeState(ev.kind, ev.color, ev.quadrant)
            elif ev.action == "disappear":
                shapes.pop(ev.kind, None)
            elif ev.action == "move":
                shapes[ev.kind].quadrant = ev.quadrant
            elif ev.action == "recolor":
                shapes[ev.kind].color = ev.color
        return shapes

    def step_times(self) -> list[float]:
        return [k * STEP_S for k in range(self.n_steps)]

    def events_between(self, t0: float, t1: float) -> list[Event]:
        """Events with t0 < time <= t1."""
        return [e for e in self.events if t0 + 1e-9 < e.time <= t1 + 1e-9]

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Scene:
        return Scene(
            seed=d["seed"],
            task_type=d["task_type"],
            n_steps=d["n_steps"],
            background=d["background"],
            bg_level=d["bg_level"],
            initial=[ShapeState(**s) for s in d["initial"]],
            events=[Event(**e) for e in d["events"]],
        )


# -- rendering -------------------------------------------------------------------------------
_YY, _XX = np.mgrid[0:28, 0:28]
_MASKS = {
    "square": (np.abs(_XX - 13.5) <= 9) & (np.abs(_YY - 13.5) <= 9),
    "circle": (_XX - 13.5) ** 2 + (_YY - 13.5) ** 2 <= 10.5**2,
    "triangle": (_YY >= 4) & (_YY <= 23) & (np.abs(_XX - 13.5) <= (_YY - 4) * 0.55),
}
_ORIGIN = {"top left": (0, 0), "top right": (0, 28), "bottom left": (28, 0), "bottom right": (28, 28)}


# Each quadrant is a floor tile with its own faint tint, so which quadrant a region is can be seen
# in its pixels: a small vision tower trained from scratch reads colors easily, while telling "top
# left" from "bottom right" by position alone stayed at chance in our CPU runs (docs/pocket-model.md).
TILE_TINT = {
    "top left": (0, 0, 0),
    "top right": (28, 0, -28),
    "bottom left": (-28, 0, 28),
    "bottom right": (22, -22, 22),
}


def _background(scene: Scene) -> np.ndarray:
    frame = np.full((FRAME, FRAME, 3), scene.bg_level, dtype=np.int64)
    if scene.background == "textured":
        rng = np.random.default_rng(scene.seed)
        noise = rng.integers(-14, 15, (FRAME // 4, FRAME // 4, 1))
        frame = frame + np.kron(noise, np.ones((4, 4, 1), dtype=np.int64))
    for quad, (y, x) in _ORIGIN.items():
        frame[y : y + 28, x : x + 28] += np.array(TILE_TINT[quad], dtype=np.int64)
    return np.clip(frame, 0, 255).astype(np.uint8)


def render_state(scene: Scene, shapes: dict[str, ShapeState], bg: np.ndarray | None = None) -> np.ndarray:
    frame = (_background(scene) if bg is None else bg).copy()
    for s in shapes.values():
        y, x = _ORIGIN[s.quadrant]
        region = frame[y : y + 28, x : x + 28]
        region[_MASKS[s.kind]] = COLORS[s.color]
    return frame


def render_frames(scene: Scene, fps: float = 0.5) -> list[tuple[float, np.ndarray]]:
    """Frames at ``fps`` over the whole scene, with their times."""
    bg = _background(scene)
    n = int(round(scene.duration * fps))
    return [(k / fps, render_state(scene, scene.state_at(k / fps), bg)) for k in range(n)]
