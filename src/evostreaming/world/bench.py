"""ShapesWorld streaming benchmarks in the RealStreamEval native format, with mp4 clips."""

from __future__ import annotations

import random
from pathlib import Path

from evostreaming.eval.schema import GoldAnswer, Sample, UserTurn, write_samples
from evostreaming.video.writer import write_mp4
from evostreaming.world.generator import generate_scene
from evostreaming.world.language import BY_KEY, Question, answer_at, questions_for
from evostreaming.world.scene import Scene, render_frames

REGIME = {
    "immediate visual": "RTVP",
    "memory-dependent": "BT",
    "temporal aggregation": "FAR",
    "anticipatory monitoring": "FAR",
    "dynamic event description": "FAR",
}
TASK = {
    "immediate visual": "immediate",
    "memory-dependent": "memory",
    "temporal aggregation": "counting",
    "anticipatory monitoring": "anticipation",
    "dynamic event description": "description",
}
VIDEO_FPS = 2.0
# Benchmark scenes never overlap training scenes ([0, 20,000)) or the offline held-out set
# ([10,000,000, 11,000,000)).
BENCH_SEED_BASE = 50_000_000


def bench_scene_seed(seed: int, i: int) -> int:
    return BENCH_SEED_BASE + seed * 100_003 + i


def sample_for_scene(scene: Scene, video: str, rng: random.Random) -> Sample:
    tt = scene.task_type
    base = dict(
        id=f"shapes-{scene.seed}",
        video=video,
        fps=0.5,
        duration=scene.duration,
        task=TASK[tt],
        regime=REGIME[tt],
        meta={"seed": scene.seed, "task_type": tt, "world": "shapesworld"},
    )
    steps = scene.step_times()
    if tt in ("immediate visual", "memory-dependent"):
        # ask at a step where the answer is defined, leaving two steps after for repeats
        qs = questions_for(scene, tt)
        for _ in range(50):
            q = rng.choice(qs)
            t = rng.choice(steps[1 : max(2, len(steps) - 2)])
            a = answer_at(scene, q, t)
            if a is not None:
                break
        else:
            raise RuntimeError(f"scene {scene.seed}: no answerable {tt} question")
        return Sample(
            **base,
            turns=[UserTurn(time=t, text=q.text)],
            answers=[GoldAnswer(time=t, answer=a, judge=q.template.judge)],
        )
    key = {
        "temporal aggregation": "count_moves",
        "anticipatory monitoring": "when_appears",
        "dynamic event description": "each_change",
    }[tt]
    template = BY_KEY[key]
    if key == "count_moves":
        kind = next(e.kind for e in scene.events if e.action == "move")
        times = [e.time for e in scene.events if e.action == "move" and e.kind == kind]
    elif key == "when_appears":
        kind = next(e.kind for e in scene.events if e.action == "appear")
        times = [e.time for e in scene.events if e.action == "appear" and e.kind == kind]
    else:
        kind = None
        times = [e.time for e in scene.events]
    q = Question(template, kind)
    answers = [GoldAnswer(time=t, evidence_start=t, answer=answer_at(scene, q, t), judge=template.judge) for t in times]
    return Sample(**base, turns=[UserTurn(time=0.0, text=q.text)], answers=answers)


def make_bench(seed: int, n: int, output: Path, *, crf: int = 12) -> list[Sample]:
    """Write ``n`` scenes (task types in turn) as mp4 + ``samples.jsonl`` + ``scenes.jsonl`` under ``output``."""
    import json

    output = Path(output)
    (output / "videos").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples, scenes = [], []
    for i in range(n):
        scene = generate_scene(bench_scene_seed(seed, i))
        frames = render_frames(scene, fps=VIDEO_FPS)
        rel = f"videos/shapes-{scene.seed}.mp4"
        write_mp4((f for _, f in frames), output / rel, fps=VIDEO_FPS, crf=crf)
        samples.append(sample_for_scene(scene, rel, rng))
        scenes.append(scene.to_dict())
    write_samples(samples, output / "samples.jsonl")
    with open(output / "scenes.jsonl", "w") as f:
        for s in scenes:
            f.write(json.dumps(s) + "\n")
    return samples
