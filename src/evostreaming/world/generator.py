"""Seeded scene generator. Each task type has its own recognizable dynamics, so the type of a
video is learnable from the video itself:

* immediate visual: a static scene of 2-3 shapes (no event);
* memory-dependent: 1-2 shapes, exactly one change (recolor or move) in the first half;
* temporal aggregation: one shape moves again and again (3-4 moves);
* anticipatory monitoring: one shape, then a second appears in the second half;
* dynamic event description: 3-4 events of at least two different actions.
"""

from __future__ import annotations

import random

from evostreaming.world.scene import COLORS, KINDS, QUADRANTS, STEP_S, TASK_TYPES, Event, Scene, ShapeState


def _initial(rng: random.Random, n: int) -> list[ShapeState]:
    kinds = rng.sample(KINDS, n)
    quads = rng.sample(QUADRANTS, n)
    return [ShapeState(k, rng.choice(list(COLORS)), q) for k, q in zip(kinds, quads, strict=True)]


def _apply(scene: Scene, ev: Event) -> None:
    state = scene.state_at(ev.time - STEP_S / 2)
    if ev.action in ("move", "recolor", "disappear"):
        ev.old_color = state[ev.kind].color
        ev.old_quadrant = state[ev.kind].quadrant
    scene.events.append(ev)


def _random_event(rng: random.Random, scene: Scene, t: float, allowed: tuple[str, ...]) -> Event | None:
    state = scene.state_at(t - STEP_S / 2)
    free = [q for q in QUADRANTS if q not in {s.quadrant for s in state.values()}]
    absent = [k for k in KINDS if k not in state]
    options = []
    if "appear" in allowed and absent and free:
        options.append(
            Event(t, "appear", rng.choice(absent), color=rng.choice(list(COLORS)), quadrant=rng.choice(free))
        )
    if "disappear" in allowed and len(state) >= 2:
        options.append(Event(t, "disappear", rng.choice(sorted(state))))
    if "move" in allowed and state and free:
        options.append(Event(t, "move", rng.choice(sorted(state)), quadrant=rng.choice(free)))
    if "recolor" in allowed and state:
        kind = rng.choice(sorted(state))
        options.append(Event(t, "recolor", kind, color=rng.choice([c for c in COLORS if c != state[kind].color])))
    return rng.choice(options) if options else None


def generate_scene(seed: int, task_type: str | None = None) -> Scene:
    rng = random.Random(seed)
    task_type = task_type or TASK_TYPES[seed % len(TASK_TYPES)]
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; one of {TASK_TYPES}")
    background = rng.choice(["plain", "textured"])
    bg_level = rng.choice([70, 100, 130, 160])

    def scene_of(n_steps: int, n_shapes: int) -> Scene:
        return Scene(seed, task_type, n_steps, background, bg_level, _initial(rng, n_shapes))

    if task_type == "immediate visual":
        scene = scene_of(rng.randint(6, 10), rng.randint(2, 3))
    elif task_type == "memory-dependent":
        scene = scene_of(rng.randint(8, 12), rng.randint(1, 2))
        k = rng.randint(1, scene.n_steps // 2 - 1)
        _apply(scene, _random_event(rng, scene, k * STEP_S, ("move", "recolor")))
    elif task_type == "temporal aggregation":
        # at most 4 events in at least 12 steps: answering at each stays under R_ans 0.4
        scene = scene_of(rng.randint(12, 16), rng.randint(1, 2))
        mover = rng.choice([s.kind for s in scene.initial])
        n_moves = rng.randint(3, 4)
        steps = sorted(rng.sample(range(1, scene.n_steps), n_moves))
        for k in steps:
            state = scene.state_at(k * STEP_S - STEP_S / 2)
            free = [q for q in QUADRANTS if q not in {s.quadrant for s in state.values()}]
            _apply(scene, Event(k * STEP_S, "move", mover, quadrant=rng.choice(free)))
    elif task_type == "anticipatory monitoring":
        scene = scene_of(rng.randint(8, 12), 1)
        k = rng.randint(scene.n_steps // 2, scene.n_steps - 1)
        _apply(scene, _random_event(rng, scene, k * STEP_S, ("appear",)))
    else:  # dynamic event description
        scene = scene_of(rng.randint(12, 16), rng.randint(1, 2))
        n_events = rng.randint(3, 4)
        steps = sorted(rng.sample(range(1, scene.n_steps), n_events))
        actions = ("appear", "disappear", "move", "recolor")
        for i, k in enumerate(steps):
            ev = None
            while ev is None:
                ev = _random_event(rng, scene, k * STEP_S, actions)
                # at least two different actions overall
                if i == n_events - 1 and ev and {e.action for e in scene.events} == {ev.action}:
                    ev = _random_event(rng, scene, k * STEP_S, tuple(a for a in actions if a != ev.action))
                    if ev is None:
                        break
            if ev:
                _apply(scene, ev)
    return scene
