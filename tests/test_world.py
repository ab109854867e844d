"""ShapesWorld: scenes are deterministic, frames show the logged state, and every derived answer
agrees with what the rendered pixels show (read back independently of the event log)."""

import random

import numpy as np
import pytest

from evostreaming.eval.policies import Oracle
from evostreaming.eval.protocol import run_protocol
from evostreaming.eval.report import write_report
from evostreaming.eval.schema import load_samples
from evostreaming.video.sources import VideoFileSource
from evostreaming.world.bench import bench_scene_seed, make_bench
from evostreaming.world.generator import generate_scene
from evostreaming.world.language import (
    BY_KEY,
    Question,
    answer_at,
    is_valid_question,
    parse_question,
    questions_for,
    relevant_at,
)
from evostreaming.world.scene import COLORS, KINDS, STEP_S, TASK_TYPES, Event, Scene, ShapeState, render_frames
from evostreaming.world.supervision import KINDS_OF_EXAMPLES, history, inventory, kind_list, make_example

ORIGIN = {"top left": (0, 0), "top right": (0, 28), "bottom left": (28, 0), "bottom right": (28, 28)}
# pixels that tell the kinds apart: a square fills its corner, a circle its sides, a triangle neither
PROBES = {"corner": (6, 6), "side": (14, 4), "center": (16, 14)}


def read_frame(frame):
    """{kind: (color, quadrant)} read from pixels only."""
    seen = {}
    for quad, (y, x) in ORIGIN.items():
        px = {name: tuple(int(v) for v in frame[y + dy, x + dx]) for name, (dy, dx) in PROBES.items()}
        color = next((c for c, rgb in COLORS.items() if px["center"] == rgb), None)
        if color is None:
            continue
        kind = "square" if px["corner"] == COLORS[color] else "circle" if px["side"] == COLORS[color] else "triangle"
        seen[kind] = (color, quad)
    return seen


@pytest.mark.parametrize("seed", range(40))
def test_frames_show_exactly_the_logged_state(seed):
    scene = generate_scene(seed)
    for t, frame in render_frames(scene):
        state = scene.state_at(t)
        assert read_frame(frame) == {k: (s.color, s.quadrant) for k, s in state.items()}


def test_generator_is_deterministic_and_covers_every_task_type():
    assert generate_scene(123).to_dict() == generate_scene(123).to_dict()
    assert generate_scene(123).to_dict() != generate_scene(124).to_dict()
    assert {generate_scene(s).task_type for s in range(5)} == set(TASK_TYPES)
    for s in range(200):
        scene = generate_scene(s)
        times = [e.time for e in scene.events]
        assert all(t % STEP_S == 0 and 0 < t < scene.duration for t in times)
        assert len(times) == len(set(times))  # at most one event per step
        if scene.task_type in ("temporal aggregation", "dynamic event description"):
            assert len(times) / scene.n_steps < 0.4  # answering at each event keeps R_ans < 0.4


@pytest.mark.parametrize("seed", range(60))
def test_derived_answers_agree_with_the_pixels(seed):
    scene = generate_scene(seed)
    frames = render_frames(scene)
    seen = [read_frame(f) for _, f in frames]
    for k, (t, _) in enumerate(frames):
        now = seen[k]
        for kind in KINDS:
            color = answer_at(scene, Question(BY_KEY["color_now"], kind), t)
            assert color == (now[kind][0] if kind in now else None)
            assert answer_at(scene, Question(BY_KEY["where_now"], kind), t) == (now[kind][1] if kind in now else None)
            # moves: the shape's quadrant changed between consecutive frames while it stayed visible
            moves = sum(
                1
                for a, b in zip(seen[: k + 1], seen[1 : k + 1], strict=False)
                if kind in a and kind in b and a[kind][1] != b[kind][1]
            )
            n = answer_at(scene, Question(BY_KEY["count_moves"], kind), t)
            if n is not None:
                assert int(n) == moves
            before = answer_at(scene, Question(BY_KEY["color_before"], kind), t)
            changes = [
                a[kind][0]
                for a, b in zip(seen[: k + 1], seen[1 : k + 1], strict=False)
                if kind in a and kind in b and a[kind][0] != b[kind][0]
            ]
            assert before == (changes[-1] if changes else None)
            appeared = answer_at(scene, Question(BY_KEY["when_appears"], kind), t)
            if appeared is not None:
                assert appeared.endswith(f"{kind} appears") and kind in now or any(kind not in s for s in seen[: k + 1])
        assert answer_at(scene, Question(BY_KEY["count_now"], None), t) == str(len(now))


def test_relevance_of_streaming_questions_matches_what_changed_on_screen():
    for seed in range(80):
        scene = generate_scene(seed)
        seen = [read_frame(f) for _, f in render_frames(scene)]
        for q in questions_for(scene):
            for k, t in enumerate(scene.step_times()[1:], start=1):
                before, now = seen[k - 1], seen[k]
                key, kind = q.template.key, q.kind
                if key == "count_moves":
                    expected = kind in before and kind in now and before[kind][1] != now[kind][1]
                elif key == "when_appears":
                    expected = kind not in before and kind in now
                elif key == "each_change":
                    expected = before != now
                elif key == "color_before":
                    expected = kind in before and kind in now and before[kind][0] != now[kind][0]
                elif key == "where_before":
                    expected = kind in before and kind in now and before[kind][1] != now[kind][1]
                elif key in ("color_now", "where_now"):
                    expected = kind in now
                else:
                    expected = True
                assert relevant_at(scene, q, t) == expected, (seed, q.text, t)


def test_question_parser_and_validity():
    q = parse_question("Tell me each time the circle moves, with the count.")
    assert q.template.key == "count_moves" and q.kind == "circle"
    assert parse_question("what colour is the circle?") is None
    assert is_valid_question("what color was the square before it changed?", "memory-dependent")
    assert not is_valid_question("what color was the square before it changed?", "immediate visual")
    scene = generate_scene(2)  # temporal aggregation: one shape moves
    mover = scene.events[0].kind
    assert is_valid_question(f"tell me each time the {mover} moves, with the count.", "temporal aggregation", scene)
    absent = next(k for k in KINDS if k not in {s.kind for s in scene.initial} | {e.kind for e in scene.events})
    assert not is_valid_question(
        f"tell me each time the {absent} moves, with the count.", "temporal aggregation", scene
    )


def test_offline_supervision_formats():
    rng = random.Random(0)
    kinds_seen, rel = set(), []
    for seed in range(60):
        scene = generate_scene(seed)
        for kind in KINDS_OF_EXAMPLES:
            ex = make_example(scene, kind, rng)
            if ex is None:
                continue
            kinds_seen.add(kind)
            assert ex.frames and ex.prompt and ex.answer
            assert "<silent>" not in ex.prompt + ex.answer  # never the silence marker
            if kind == "question":
                assert is_valid_question(ex.answer, ex.task_type, scene)
            if kind == "relevance":
                assert len(ex.frames) == 2 and ex.answer in ("yes", "no")
                q = parse_question(ex.prompt.split("question: ", 1)[1].rsplit(" answer yes or no.", 1)[0])
                if q.task_type != "immediate visual":  # questions about changes: both answers occur
                    rel.append(ex.answer)
            if kind == "task_type":
                assert ex.answer == scene.task_type and len(ex.frames) == scene.n_steps
    assert kinds_seen == set(KINDS_OF_EXAMPLES)
    assert 0.3 < rel.count("yes") / len(rel) < 0.7


def test_make_bench_is_a_valid_realstreameval_benchmark(tmp_path):
    samples = make_bench(5, 10, tmp_path)
    loaded = load_samples(tmp_path / "samples.jsonl")
    assert [s.id for s in loaded] == [s.id for s in samples]
    assert {s.regime for s in loaded} == {"RTVP", "BT", "FAR"}
    assert {a.judge for s in loaded for a in s.answers} <= {"exact", "number", "text"}
    # the mp4 at 0.5 fps shows the logged state (colors survive encoding within a small tolerance)
    scene = generate_scene(bench_scene_seed(5, 3))
    frames = list(VideoFileSource(tmp_path / f"videos/shapes-{scene.seed}.mp4", fps=0.5))
    assert [round(f.time, 3) for f in frames] == scene.step_times()
    for f, (_, rendered) in zip(frames, render_frames(scene), strict=True):
        assert np.abs(np.asarray(f.image, dtype=int) - rendered.astype(int)).mean() < 6
    for s in loaded:
        s.video = str(tmp_path / s.video)
    run_protocol(loaded, Oracle(), tmp_path / "oracle")
    assert write_report(tmp_path / "oracle")["overall"] == pytest.approx(100.0)


def test_world_make_bench_cli(tmp_path):
    from typer.testing import CliRunner

    from evostreaming.cli import app

    res = CliRunner().invoke(app, ["world", "make-bench", "--seed", "3", "--n", "5", "--output", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(load_samples(tmp_path)) == 5 and len(list((tmp_path / "videos").glob("*.mp4"))) == 5


def test_inventory_lists_shapes_in_quadrant_order():
    scene = Scene(0, "dynamic event description", 4, "plain", 100, [ShapeState("square", "blue", "bottom right")])
    scene.events = [
        Event(2.0, "appear", "circle", color="red", quadrant="top left"),
        Event(4.0, "disappear", "square"),
        Event(6.0, "disappear", "circle"),
    ]
    assert inventory(scene, 0.0) == "blue square at bottom right"
    assert inventory(scene, 2.0) == "red circle at top left, blue square at bottom right"
    assert inventory(scene, 6.0) == "no shapes"


def test_kind_list_names_each_shape_first_in_kind_order():
    # the square is in the first quadrant and the circle in the last: kind order, not place order
    scene = Scene(0, "immediate visual", 3, "plain", 100, [ShapeState("square", "blue", "top left")])
    scene.events = [Event(2.0, "appear", "circle", color="red", quadrant="bottom right")]
    assert kind_list(scene, 0.0) == "square at top left in blue"
    assert kind_list(scene, 2.0) == "circle at bottom right in red, square at top left in blue"


def test_history_tells_each_shapes_changes_in_kind_order():
    scene = Scene(0, "dynamic event description", 6, "plain", 100, [ShapeState("square", "blue", "top left")])
    scene.events = [
        Event(2.0, "appear", "circle", color="red", quadrant="bottom right"),
        Event(4.0, "move", "square", quadrant="top right", old_quadrant="top left", old_color="blue"),
        Event(6.0, "recolor", "circle", color="green", old_quadrant="bottom right", old_color="red"),
        Event(8.0, "disappear", "square", old_quadrant="top right", old_color="blue"),
    ]
    assert history(scene, 0.0) == "square at top left in blue"
    # a shape that arrives later still leads its own story, and only what happened by t is told
    assert (
        history(scene, 4.0) == "circle appears at bottom right in red; square at top left in blue, moves to top right"
    )
    assert history(scene, 8.0) == (
        "circle appears at bottom right in red, turns green; square at top left in blue, moves to top right, disappears"
    )
    empty = Scene(0, "immediate visual", 3, "plain", 100, [])
    assert history(empty, 4.0) == "no shapes"


def test_multi_turn_examples_ask_more_about_the_same_frames():
    rng = random.Random(3)
    for seed in range(20):
        scene = generate_scene(seed)
        ex = make_example(scene, "qa", rng, turns=3)
        t = ex.meta["t"]
        asked = [ex.prompt] + [p for p, _ in ex.follow_ups]
        assert len(set(asked)) == len(asked)  # distinct questions
        for prompt, answer in ex.follow_ups:  # every follow-up is answered about the same clip end
            assert answer_at(scene, parse_question(prompt), t) == answer
        rel = make_example(scene, "relevance", rng, turns=2)
        for prompt, answer in rel.follow_ups:
            q = parse_question(prompt.split("question: ", 1)[1].rsplit(" answer yes or no.", 1)[0])
            assert answer == ("yes" if relevant_at(scene, q, rel.meta["t"]) else "no")
