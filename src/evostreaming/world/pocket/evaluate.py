"""Held-out offline metrics of the pocket model (the model card's numbers).

Scenes come from seeds disjoint from training (>= 10,000,000). Every example is shown whole
(offline), answered greedily, and checked against the world's canonical answer:

* QA accuracy: normalized exact match (numbers compared as integers);
* relevance accuracy: the yes/no answer;
* question generation: the output parses as a canonical question of the requested type that
  makes sense for the clip;
* task-type classification accuracy.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

from evostreaming.eval.judges import normalize
from evostreaming.utils.jobs import write_json
from evostreaming.world.generator import generate_scene
from evostreaming.world.language import BY_KEY, is_valid_question
from evostreaming.world.supervision import KINDS_OF_EXAMPLES, Example, make_example, prompt_messages

HELDOUT_SEED = 10_000_000


@torch.no_grad()
def generate_answers(model, processor, examples: list[Example], batch_size: int = 16, max_new_tokens: int = 32):
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    outs = []
    try:
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            texts = [
                processor.apply_chat_template(prompt_messages(ex), tokenize=False, add_generation_prompt=True)
                for ex in chunk
            ]
            images = [Image.fromarray(f) for ex in chunk for f in ex.frames]
            enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
            new = gen[:, enc["input_ids"].shape[1] :]
            outs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    finally:
        tok.padding_side = side
    return outs


def heldout_examples(n_per_kind: int | dict[str, int], seed: int = HELDOUT_SEED) -> list[Example]:
    """Held-out single-turn examples; ``n_per_kind`` is a count for every kind or a count per kind.
    Kinds are drawn in a fixed order from one generator, QA first: the first n QA examples are the
    same whatever the other counts."""
    rng = random.Random(seed)
    counts = n_per_kind if isinstance(n_per_kind, dict) else dict.fromkeys(KINDS_OF_EXAMPLES, n_per_kind)
    out = []
    for kind in KINDS_OF_EXAMPLES:
        got = 0
        while got < counts.get(kind, 0):
            scene = generate_scene(seed + rng.randrange(1_000_000))
            ex = make_example(scene, kind, rng)
            if ex is not None:
                ex.meta["scene"] = scene
                out.append(ex)
                got += 1
    return out


def is_correct(ex: Example, output: str) -> bool:
    if ex.kind == "question":
        return is_valid_question(output, ex.task_type, ex.meta["scene"])
    if ex.answer.isdigit():
        return output.strip().isdigit() and int(output) == int(ex.answer)
    return normalize(output) == normalize(ex.answer)


def offline_metrics(
    model, processor, n_per_kind: int | dict[str, int] = 100, seed: int = HELDOUT_SEED, out: Path | None = None
) -> dict:
    examples = heldout_examples(n_per_kind, seed)
    outputs = generate_answers(model, processor, examples)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_type: dict[str, list[bool]] = defaultdict(list)
    by_form: dict[str, list[bool]] = defaultdict(list)
    by_template: dict[str, list[bool]] = defaultdict(list)
    failures = []
    for ex, o in zip(examples, outputs, strict=True):
        ok = is_correct(ex, o)
        by_kind[ex.kind].append(ok)
        if ex.kind == "qa":
            by_type[ex.task_type].append(ok)
            by_form["stream request" if BY_KEY[ex.meta["key"]].streaming else "question"].append(ok)
            by_template[ex.meta["key"]].append(ok)
        if not ok and len(failures) < 30:
            failures.append({"kind": ex.kind, "prompt": ex.prompt, "gold": ex.answer, "output": o})
    acc = {k: sum(v) / len(v) for k, v in by_kind.items()}
    result = {
        "qa_accuracy": acc.get("qa"),
        "relevance_accuracy": acc.get("relevance"),
        "question_validity": acc.get("question"),
        "task_type_accuracy": acc.get("task_type"),
        "caption_accuracy": acc.get("caption"),
        "inventory_accuracy": acc.get("inventory"),
        "kind_list_accuracy": acc.get("kind_list"),
        "history_accuracy": acc.get("history"),
        "qa_accuracy_by_task_type": {k: sum(v) / len(v) for k, v in sorted(by_type.items())},
        # "tell me when ..." requests asked about a finished clip, apart from ordinary questions:
        # a streaming assistant may rightly answer such a request with the silence marker
        "qa_accuracy_by_form": {k: sum(v) / len(v) for k, v in sorted(by_form.items())},
        "n_qa_by_form": {k: len(v) for k, v in sorted(by_form.items())},
        "qa_accuracy_by_template": {k: sum(v) / len(v) for k, v in sorted(by_template.items())},
        "n_qa_by_template": {k: len(v) for k, v in sorted(by_template.items())},
        "n_per_kind": n_per_kind,
        "n_by_kind": {k: len(v) for k, v in by_kind.items()},
        "heldout_seed": seed,
        "failures": failures,
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), result)
    return result


def perception_metrics(model, processor, n_frames: int = 150, seed: int = 2 * HELDOUT_SEED) -> dict:
    """Single-frame perception on held-out scenes: the inventory of a frame, and one question
    (color, place or count of a shape) about the same frame; accuracy per question, and over the
    color and place questions on frames with several shapes ("named shape among several")."""
    from evostreaming.world.pocket.data import perception_examples

    rng = random.Random(seed)
    examples = []
    for i in range(n_frames):
        ex = perception_examples(generate_scene(seed + i), rng, 1)[0]
        prompt, answer = ex.follow_ups[0]
        examples.append(Example("inventory", ex.frames, ex.prompt, ex.answer, "", {"q": "inventory"}))
        several = len(ex.answer.split(", ")) > 1  # the inventory lists more than one shape
        examples.append(
            Example("qa", ex.frames, prompt, answer, "", {"q": " ".join(prompt.split()[:2]), "several": several})
        )
    outputs = generate_answers(model, processor, examples)
    by_q: dict[str, list[bool]] = defaultdict(list)
    for ex, o in zip(examples, outputs, strict=True):
        by_q[ex.meta["q"]].append(is_correct(ex, o))
        # a question naming one of several shapes: the model must find that shape, not just any
        if ex.meta.get("several") and ex.meta["q"] in ("what color", "where is"):
            by_q["named shape among several"].append(is_correct(ex, o))
    return {q: {"accuracy": sum(v) / len(v), "n": len(v)} for q, v in sorted(by_q.items())}


@torch.no_grad()
def streamed_qa_metrics(model, processor, n: int = 150, seed: int = HELDOUT_SEED, marker: str = "<silent>") -> dict:
    """The held-out QA questions asked in the streaming format: one frame per user turn, the
    silence marker teacher-forced as the reply to every frame but the last, the question with the
    last frame, then a greedy answer (the marker banned as first token). Compared with the same
    questions shown offline (all frames in one message), per task type."""
    from evostreaming.stream.session import SessionConfig, StreamingSession

    examples = heldout_examples({"qa": n}, seed)
    offline = generate_answers(model, processor, examples)
    by_type: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for ex, off in zip(examples, offline, strict=True):
        session = StreamingSession(model, processor, config=SessionConfig(max_new_tokens=16, silence_marker=marker))
        for frame in ex.frames[:-1]:
            session.push_frame(frame)
            session.append_reply(marker)
        session.push_frame(ex.frames[-1], ex.prompt)
        ids = session.generate_reply(ban_marker_start=True)
        streamed = processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
        by_type[ex.task_type].append((is_correct(ex, off), is_correct(ex, streamed)))
    everything = [r for rows in by_type.values() for r in rows]

    def acc(rows, i):
        return sum(r[i] for r in rows) / len(rows)

    return {
        "offline": acc(everything, 0),
        "streamed": acc(everything, 1),
        "by_task_type": {
            k: {"n": len(v), "offline": acc(v, 0), "streamed": acc(v, 1)} for k, v in sorted(by_type.items())
        },
    }
